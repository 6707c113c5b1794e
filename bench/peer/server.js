// PostGraphile 4, one process, the peer that `python -m bench run` compares us with.
// Usage: node bench/peer/server.js <postgres-url> <port>
"use strict";
const http = require("http");
const { postgraphile } = require("postgraphile");
const ConnectionFilterPlugin = require("postgraphile-plugin-connection-filter");

const [databaseUrl, port] = process.argv.slice(2);
if (!databaseUrl || !port) {
  console.error("usage: node server.js <postgres-url> <port>");
  process.exit(2);
}

const middleware = postgraphile(databaseUrl, "public", {
  appendPlugins: [ConnectionFilterPlugin],
  retryOnInitFail: true,
  disableQueryLog: true,
  enableCors: true,
  graphiql: false,
  dynamicJson: true,
  // `filter: null` (the fixed overview variant) means no filter, as in our schema.
  graphileBuildOptions: { connectionFilterAllowNullInput: true },
  setofFunctionsContainNulls: false,
  ignoreRBAC: false,
  // Production settings: no stack traces, no watch mode, no schema export.
  extendedErrors: [],
  showErrorStack: false,
  watchPg: false,
});

const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
    return;
  }
  middleware(req, res);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`PostGraphile on http://127.0.0.1:${port}/graphql`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
