// A job's page: its log as the runner sends it, its status, and the Debug
// button for whom Rails allows it (AU-1/2), which opens the terminal in a new tab.
'use strict';

const jobId = location.pathname.split('/')[3];
// The runner's log carries colours (ANSI SGR): this page shows plain text.
const ansi = /\x1b\[[0-9;]*[A-Za-z]/g;

async function refreshJob() {
  const job = await getJson('/-/ui/jobs/' + jobId);
  document.title = 'Job #' + job.id + ' · session-harness';
  document.getElementById('title').textContent = 'Job #' + job.id;
  badge(document.getElementById('status'), job.status);
  document.getElementById('about').textContent =
    'Project ' + job.project + ', started by ' + job.owner;
  const log = document.getElementById('log');
  const text = (job.log || '').replace(ansi, '');
  if (log.textContent !== text) {
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = text;
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
  const debug = document.getElementById('debug');
  debug.href = '/-/jobs/' + job.id + '/terminal';
  debug.hidden = !job.debug;
  const why = document.getElementById('no-debug');
  why.hidden = job.debug;
  why.textContent = job.debug ? '' : 'No Debug button: ' + job.no_debug + '.';
  return job.status;
}

(async function follow() {
  // Every second while the job may change; the log is fetched whole (it is small).
  for (;;) {
    let status = 'pending';
    try { status = await refreshJob(); } catch (e) { /* the next poll retries */ }
    await new Promise((r) => setTimeout(r, status === 'pending' || status === 'running' ? 1000 : 5000));
  }
})();
