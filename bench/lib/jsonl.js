'use strict';
// JSON lines between a benchmark runner and its Node driver (no dependencies, so every driver
// package can `require('../lib/jsonl')`): one object per stdout line, commands one per stdin line.

const readline = require('readline');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// Runs `handlers[cmd.cmd](cmd)` for each command line, one after the other (awaited, in order);
// an unknown command or a handler's exception is reported as {"event":"error"}. `quit` runs on
// {"cmd":"quit"} and at EOF, after the commands before it. Prints {"event":"ready"}.
function serveCommands(handlers, quit) {
  let chain = Promise.resolve();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    chain = chain.then(async () => {
      try {
        if (cmd.cmd === 'quit') quit();
        else if (handlers[cmd.cmd]) await handlers[cmd.cmd](cmd);
        else out({ event: 'error', message: `unknown command ${cmd.cmd}` });
      } catch (err) {
        out({ event: 'error', message: String(err && err.stack ? err.stack : err) });
      }
    });
  });
  rl.on('close', () => { chain.then(quit); });
  out({ event: 'ready' });
}

module.exports = { out, serveCommands };
