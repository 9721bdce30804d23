// Runs the `script:` of an actions/github-script step against a recording stand-in for the
// GitHub client it is given, so that tests see what a workflow would do to comments and issues.
// Reads {script, env, cwd, context, comments, issues} as JSON on stdin; prints
// {calls, failed} as JSON: every write the script made, and any core.setFailed message.
"use strict";

async function main(input) {
  const calls = [];
  let failed = null;
  const record = (name) => async (params) => {
    calls.push({ name, params });
    return { data: {} };
  };
  const github = {
    paginate: async (method, params) => (await method(params)).data,
    rest: {
      issues: {
        listComments: async () => ({ data: input.comments || [] }),
        listForRepo: async (params) => ({
          data: (input.issues || []).filter((i) => i.state === params.state &&
            (i.labels || []).some((l) => l.name === params.labels)),
        }),
        createComment: record("createComment"),
        updateComment: record("updateComment"),
        create: record("create"),
        update: record("update"),
      },
    },
  };
  const core = { setFailed: (message) => { failed = String(message); } };
  Object.assign(process.env, input.env || {});
  process.chdir(input.cwd);
  const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
  const run = new AsyncFunction("github", "context", "core", "require", input.script);
  await run(github, input.context, core, require);
  return { calls, failed };
}

let raw = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { raw += chunk; });
process.stdin.on("end", () => {
  main(JSON.parse(raw)).then(
    (result) => { process.stdout.write(JSON.stringify(result)); },
    (error) => { console.error(error); process.exitCode = 1; },
  );
});
