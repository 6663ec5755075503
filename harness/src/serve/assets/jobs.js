// The job list: each job's status, and Debug where Rails would allow it.
'use strict';

async function refreshJobs() {
  const jobs = await getJson('/-/ui/jobs');
  const body = document.querySelector('#jobs tbody');
  body.replaceChildren(...jobs.map((job) => {
    const row = document.createElement('tr');
    row.id = 'job-' + job.id;
    const link = document.createElement('a');
    link.href = '/-/jobs/' + job.id;
    link.textContent = '#' + job.id;
    const status = document.createElement('span');
    badge(status, job.status);
    const debug = document.createElement('a');
    if (job.debug) {
      debug.href = '/-/jobs/' + job.id + '/terminal';
      debug.target = '_blank';
      debug.className = 'button';
      debug.textContent = 'Debug';
    }
    const cells = [link, job.project, job.owner, status, debug].map((content) => {
      const cell = document.createElement('td');
      cell.append(content);
      return cell;
    });
    row.append(...cells);
    return row;
  }));
}

refreshJobs();
setInterval(refreshJobs, 2000);
