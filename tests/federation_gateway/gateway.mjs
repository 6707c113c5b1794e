// An Apollo Federation 2 gateway composing two subgraphs: Portfolio Graph (at the URL
// given as the first argument) and "reviews", a few lines here that extend Product by
// its `key`. Reads a JSON list of {query, variables, authorization} on stdin, runs each
// through the gateway (the caller's Authorization header is passed on to Portfolio
// Graph), and writes the JSON list of answers on stdout.
import { ApolloGateway, IntrospectAndCompose, LocalGraphQLDataSource, RemoteGraphQLDataSource } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { buildSubgraphSchema } from "@apollo/subgraph";
import gql from "graphql-tag";

const portfolioUrl = process.argv[2];

const REVIEWS = [
  { body: "Checkout got faster", productKey: "CHK" },
  { body: "Payments never fail", productKey: "PAY" },
  { body: "Gone for good", productKey: "NOPE" },
];

const reviews = buildSubgraphSchema({
  typeDefs: gql`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    type Query { topReviews: [Review!]! }
    type Review { body: String!, product: Product }
    type Product @key(fields: "key") { key: String!, reviewCount: Int! }
  `,
  resolvers: {
    Query: { topReviews: () => REVIEWS },
    Review: { product: (review) => ({ __typename: "Product", key: review.productKey }) },
    Product: {
      __resolveReference: (product) => product,
      reviewCount: (product) => REVIEWS.filter((r) => r.productKey === product.key).length,
    },
  },
});

const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({
    subgraphs: [
      { name: "portfolio", url: portfolioUrl },
      { name: "reviews", url: "local://reviews" },
    ],
  }),
  buildService({ url }) {
    if (url === "local://reviews") return new LocalGraphQLDataSource(reviews);
    return new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request, context }) {
        if (context.authorization) request.http.headers.set("authorization", context.authorization);
      },
    });
  },
});

const server = new ApolloServer({ gateway });
await server.start();

let input = "";
for await (const chunk of process.stdin) input += chunk;
const answers = [];
for (const { query, variables, authorization } of JSON.parse(input)) {
  const response = await server.executeOperation(
    { query, variables },
    { contextValue: { authorization } },
  );
  answers.push(response.body.singleResult);
}
await server.stop();
process.stdout.write(JSON.stringify(answers));
