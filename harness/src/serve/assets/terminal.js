// The terminal page, as GitLab's frontend opens it (terminal/terminal.js):
// `new WebSocket(url, ['terminal.gitlab.com'])`, binaryType 'arraybuffer',
// keystrokes sent as UTF-8 binary frames, output written to xterm.js. GitLab
// sends no resize message on this subprotocol (it fits the terminal on the
// page only), and neither does this page.
'use strict';

(function terminal() {
  const jobId = location.pathname.split('/')[3];
  document.title = 'Terminal for job #' + jobId + ' · session-harness';
  document.getElementById('title').textContent = 'Terminal for job #' + jobId;
  const state = document.getElementById('state');
  const term = new Terminal({ cursorBlink: true, cols: 100, rows: 30 });
  term.open(document.getElementById('terminal'));
  term.focus();
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const url = scheme + location.host + '/-/jobs/' + jobId + '/terminal.ws';
  const socket = new WebSocket(url, ['terminal.gitlab.com']);
  socket.binaryType = 'arraybuffer';
  // For tests and the curious: the page's terminal and socket.
  window.harnessTerminal = term;
  window.harnessSocket = socket;

  const encoder = new TextEncoder();
  socket.onopen = () => {
    badge(state, 'connected');
    term.onData((data) => socket.send(encoder.encode(data)));
  };
  socket.onmessage = (event) => {
    // xterm.js decodes UTF-8 itself, also across frames.
    term.write(typeof event.data === 'string' ? event.data : new Uint8Array(event.data));
  };
  socket.onerror = () => term.write('\r\nConnection failure');
  socket.onclose = (event) => {
    const reason = event.reason ? ' ' + event.reason : '';
    badge(state, 'closed (' + event.code + reason + ')');
    term.options.cursorBlink = false;
    term.options.disableStdin = true;
  };
})();
