// Runs graphql-http's auditServer against the URL given as the only argument and
// prints one JSON object per audit: {id, name, status, reason}.
import { auditServer } from 'graphql-http';

const results = await auditServer({ url: process.argv[2] });
console.log(
  JSON.stringify(
    results.map(({ id, name, status, reason }) => ({ id, name, status, reason })),
  ),
);
