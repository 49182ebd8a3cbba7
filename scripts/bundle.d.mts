// Types of scripts/bundle.mjs (plain JavaScript, so that scripts/setup.mjs can run it under Node).
export declare const BUNDLE_DIR: string;
export declare const BUNDLE_FILE: string;
export declare function sourceFingerprint(root: string): string;
export declare function currentBundle(root: string, bunVersion: string, opts?: { checkSources?: boolean }): string | null;
export declare function buildBundle(root: string, bun: string): { file: string; built: boolean } | { file: null; reason: string };
