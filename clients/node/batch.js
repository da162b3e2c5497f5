#!/usr/bin/env node
// Clawgate's streaming batch from Node.js: sends one chat request per line of stdin (a
// prompt) on one bidirectional gRPC stream (StreamBatchChatCompletions) and prints each
// result as it arrives, in the order they finish: `<custom_id> <status_code> <answer>`.
//
//   printf 'first prompt\nsecond prompt\n' | CLAWGATE_TOKEN=$(clawgate token) node batch.js
//
// Environment as example.js: CLAWGATE_TOKEN, CLAWGATE_GRPC, CLAWGATE_MODEL, CLAWGATE_PROTO_DIR.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const googleProtos = require("google-proto-files");

const PROTO_DIR = process.env.CLAWGATE_PROTO_DIR || path.resolve(__dirname, "../../proto");
const target = process.argv[2] || process.env.CLAWGATE_GRPC || "localhost:8000";
const token = process.env.CLAWGATE_TOKEN;
const model = process.env.CLAWGATE_MODEL || "qwen3:32b";

const definition = protoLoader.loadSync(["clawgate/batches/v1/batch_service.proto"], {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  includeDirs: [PROTO_DIR, path.dirname(googleProtos.getProtoPath())],
});
const { BatchService } = grpc.loadPackageDefinition(definition).clawgate.batches.v1;

function main() {
  if (!token) {
    console.error("set CLAWGATE_TOKEN (clawgate token)");
    process.exit(2);
  }
  const prompts = fs.readFileSync(0, "utf8").split("\n").filter((line) => line.trim());
  const client = new BatchService(target, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const call = client.StreamBatchChatCompletions(md, {
    deadline: new Date(Date.now() + 120 * 1000),
  });
  call.on("data", (result) => {
    const body = JSON.parse(Buffer.from(result.body).toString("utf8"));
    const text = result.status_code === 200
      ? body.choices[0].message.content
      : `${body.error.code}: ${body.error.message}`;
    console.log(`${result.custom_id} ${result.status_code} ${text.replace(/\n/g, " ")}`);
  });
  call.on("error", (err) => {
    console.error(`error: ${err.code} ${err.details}`);
    process.exitCode = 1;
  });
  call.on("end", () => client.close());
  prompts.forEach((prompt, i) => {
    const body = { model, messages: [{ role: "user", content: prompt }] };
    // write() returns false when gRPC's window is full; the server reads on as results go.
    call.write({ custom_id: `line-${i + 1}`, body: Buffer.from(JSON.stringify(body)) });
  });
  call.end();
}

main();
