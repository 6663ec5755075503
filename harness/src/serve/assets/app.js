// Every page: the header with the user switcher (log in as any scenario user).
'use strict';

async function getJson(path) {
  const response = await fetch(path, { cache: 'no-store' });
  if (!response.ok) throw new Error(path + ': ' + response.status);
  return response.json();
}

function badge(element, status) {
  element.textContent = status;
  element.className = 'badge ' + status.split(' ')[0];
}

(async function header() {
  const top = document.getElementById('top');
  const home = document.createElement('a');
  home.href = '/';
  home.textContent = 'session-harness GitLab';
  const who = document.createElement('label');
  who.className = 'who';
  who.textContent = 'Logged in as ';
  const select = document.createElement('select');
  select.id = 'user';
  who.appendChild(select);
  top.append(home, who);
  const session = await getJson('/-/ui/session');
  const options = [{ name: '', label: '(nobody)' }].concat(
    session.users.map((u) => ({ name: u.name, label: u.name + ' (' + u.role + ')' })));
  for (const o of options) {
    const option = document.createElement('option');
    option.value = o.name;
    option.textContent = o.label;
    option.selected = (session.user || '') === o.name;
    select.appendChild(option);
  }
  select.addEventListener('change', () => {
    location.href = '/-/login?user=' + encodeURIComponent(select.value) +
      '&back=' + encodeURIComponent(location.pathname);
  });
})();
