// Types of scripts/bundle.mjs (plain JavaScript, so that scripts/setup.mjs can run it under Node).
export declare function buildBundle(root: string, bun: string): { file: string; built: boolean } | { file: null; reason: string };
