// The Vercel AI SDK's default OpenAI provider (`openai(model)` speaks the Responses API) against a
// Tokenomy gateway: node responses.mjs BASE_URL MODEL -> one JSON line with what it got.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, model] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey: "unused" });
const plain = await generateText({ model: openai(model), prompt: "hello there", maxRetries: 0 });
const streamed = streamText({ model: openai(model), prompt: "stream me", maxRetries: 0 });
let text = "";
for await (const piece of streamed.textStream) text += piece;
const usage = await streamed.usage;
console.log(JSON.stringify({ plain: plain.text, plainUsage: plain.usage, streamed: text, streamedUsage: usage }));
