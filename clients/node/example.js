#!/usr/bin/env node
// Clawgate over gRPC from Node.js: list the models, create an agent, stream a chat
// completion through it, delete it. Everything goes through Envoy's public port (the same
// port as REST: native gRPC passes through), with the gateway token in the metadata.
//
//   npm ci
//   CLAWGATE_TOKEN=$(clawgate token) node example.js [host:port]
//
// Environment: CLAWGATE_TOKEN (required), CLAWGATE_GRPC (default localhost:8000),
// CLAWGATE_MODEL (default qwen3:32b), CLAWGATE_PROTO_DIR (default ../../proto).
"use strict";

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const googleProtos = require("google-proto-files");

const PROTO_DIR = process.env.CLAWGATE_PROTO_DIR || path.resolve(__dirname, "../../proto");
const target = process.argv[2] || process.env.CLAWGATE_GRPC || "localhost:8000";
const token = process.env.CLAWGATE_TOKEN;
const model = process.env.CLAWGATE_MODEL || "qwen3:32b";

// The protos import google/api/annotations.proto (the REST bindings): google-proto-files
// ships it; google/protobuf/* come with protobufjs.
const definition = protoLoader.loadSync(
  ["clawgate/chat/v1/chat_service.proto", "clawgate/agents/v1/agent_service.proto"],
  {
    keepCase: true, // snake_case field names, as in the protos and the REST API
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO_DIR, path.dirname(googleProtos.getProtoPath())],
  },
);
const clawgate = grpc.loadPackageDefinition(definition).clawgate;

function metadata() {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

// A unary call as a promise, with a deadline.
function unary(client, method, request, seconds = 30) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + seconds * 1000);
    client[method](request, metadata(), { deadline }, (err, reply) =>
      err ? reject(err) : resolve(reply),
    );
  });
}

// Streams the chunks of a chat completion to stdout; resolves with the last chunk.
function streamChat(chat, params) {
  return new Promise((resolve, reject) => {
    const call = chat.StreamChatCompletion({ params }, metadata(), {
      deadline: new Date(Date.now() + 120 * 1000),
    });
    let first = null;
    let last = null;
    call.on("data", (chunk) => {
      first = first || chunk;
      last = chunk;
      for (const choice of chunk.choices) {
        if (choice.delta && choice.delta.content) process.stdout.write(choice.delta.content);
      }
    });
    call.on("error", reject);
    call.on("end", () => resolve({ first, last }));
  });
}

async function main() {
  if (!token) {
    console.error("set CLAWGATE_TOKEN (e.g. CLAWGATE_TOKEN=$(clawgate token) node example.js)");
    return 2;
  }
  const channel = grpc.credentials.createInsecure(); // h2c to Envoy on the local machine
  const chat = new clawgate.chat.v1.ChatService(target, channel);
  const agents = new clawgate.agents.v1.AgentService(target, channel);
  try {
    const models = await unary(chat, "ListModels", {});
    console.log(`models: ${models.data.map((m) => m.id).join(", ")}`);

    const name = `node-example-${Date.now()}`;
    const agent = await unary(agents, "CreateAgent", {
      agent: {
        name,
        model,
        description: "Made by clients/node/example.js",
        system_prompt: "You are a concise assistant.",
        config: { temperature: 0, max_tokens: 200 }, // greedy: the same question, the same answer
      },
    });
    console.log(`agent: ${agent.id} (${agent.name}, ${agent.model})`);

    // google.protobuf.Value carries a message's content: a plain string here. protobufjs
    // builds the google.protobuf types in with camelCase names, whatever keepCase says.
    const { first, last } = await streamChat(chat, {
      model: `agent:${agent.name}`,
      messages: [{ role: "user", content: { stringValue: "Say hello to Node.js" } }],
    });
    process.stdout.write("\n");
    const finish = last.choices.map((c) => c.finish_reason).find((r) => r) || "";
    console.log(`answered by: ${first.model}; finish_reason: ${finish}`);

    await unary(agents, "DeleteAgent", { id: agent.id, etag: agent.etag });
    console.log(`deleted agent: ${agent.id}`);
    return 0;
  } catch (err) {
    // gRPC status name and the gateway's message (the same codes as the REST API).
    console.error(`error: ${grpc.status[err.code] || err.code}: ${err.details || err.message}`);
    return 1;
  } finally {
    chat.close();
    agents.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
