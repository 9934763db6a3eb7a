#!/usr/bin/env node
// Prints lodash 4.17.21 `_.startCase` test vectors as JSON lines:
//   {"input":"fooBar","start_case":"Foo Bar"}
//
// Usage (from the repository root; the install leaves package.json alone):
//   npm install --no-save lodash@4.17.21 && node scripts/startcase-vectors.js < inputs.txt
//
// Input: one string per line. A line that starts with `"` is read as a JSON string literal,
// so inputs with tabs, newlines or other special characters can be written escaped
// (e.g. "a\tb"); any other line is taken verbatim (without its line break). Empty lines are
// skipped; write "" for the empty string.
//
// Output goes to stdout, one line per input, in input order, e.g.
//   node scripts/startcase-vectors.js < inputs.txt > tests/data/startcase-extra.jsonl
'use strict';

const lodash = require('lodash');

if (lodash.VERSION !== '4.17.21') {
  console.error(`expected lodash 4.17.21, found ${lodash.VERSION}`);
  process.exit(1);
}

const chunks = [];
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', () => {
  const text = Buffer.concat(chunks).toString('utf8');
  const out = [];
  for (const line of text.split(/\r?\n/)) {
    if (line === '') continue;
    const input = line.startsWith('"') ? JSON.parse(line) : line;
    out.push(JSON.stringify({ input, start_case: lodash.startCase(input) }));
  }
  process.stdout.write(out.length ? out.join('\n') + '\n' : '');
});
