// PostGraphile 5, one process: the second peer that `python -m bench run` compares us
// with. The V4 preset keeps PostGraphile 4's schema (allProducts, nodeId, ...), so both
// peers answer the same documents; the connection-filter preset gives `filter:`.
// Usage: node bench/peer5/server.mjs <postgres-url> <port>   (Node >= 22)
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makeV4Preset } from "postgraphile/presets/v4";
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";

const [databaseUrl, port] = process.argv.slice(2);
if (!databaseUrl || !port) {
  console.error("usage: node server.mjs <postgres-url> <port>");
  process.exit(2);
}

const preset = {
  extends: [
    PostGraphileAmberPreset,
    makeV4Preset({ dynamicJson: true, setofFunctionsContainNulls: false, ignoreRBAC: false }),
    PostGraphileConnectionFilterPreset,
  ],
  pgServices: [makePgService({ connectionString: databaseUrl, schemas: ["public"] })],
  // `filter: null` (the fixed overview variant) means no filter, as in our schema.
  schema: { connectionFilterAllowNullInput: true },
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
  }
});
server.keepAliveTimeout = 65_000;
await serv.addTo(server);
server.listen(Number(port), "127.0.0.1", () => {
  console.log(`PostGraphile 5 on http://127.0.0.1:${port}/graphql`);
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close(() => pgl.release().then(() => process.exit(0)));
    setTimeout(() => process.exit(0), 5000).unref();
  });
}
