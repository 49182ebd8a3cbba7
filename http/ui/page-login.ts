/// <reference lib="dom" />
// Login page: the API token, checked against the engine before it is kept (sessionStorage, or
// localStorage when "remember" is ticked); then back to the page that asked for it.
import { setToken, tryToken } from './api.ts';
import { h } from './dom.ts';
import type { Page } from './main.ts';

export const loginPage: Page = ({ root, query, navigate, setTitle }) => {
  setTitle('Log in');
  const token = h('input', { type: 'password', name: 'token', required: true, autocomplete: 'current-password', 'data-testid': 'token', size: 40 });
  const remember = h('input', { type: 'checkbox', name: 'remember' });
  const msg = h('p', { class: 'muted', role: 'status', 'data-testid': 'login-msg' }, 'This engine requires its API token ([http] token in config.toml).');
  const form = h('form', { class: 'login' },
    h('h1', {}, 'FLUX video'), msg,
    h('label', {}, 'API token', token),
    h('label', { class: 'check' }, remember, 'Remember on this computer'),
    h('button', { type: 'submit', class: 'primary' }, 'Log in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.className = 'muted';
    msg.textContent = 'checking…';
    try {
      if (!(await tryToken(token.value))) {
        msg.className = 'error';
        msg.textContent = 'Token refused by the engine.';
        return;
      }
    } catch (err) {
      msg.className = 'error';
      msg.textContent = `Cannot reach the engine: ${(err as Error).message}`;
      return;
    }
    setToken(token.value, remember.checked);
    const next = query.get('next') ?? '/streams';
    navigate(next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/streams', true);
  });
  root.append(form);
  token.focus();
};
