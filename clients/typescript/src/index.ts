export { MemledgerClient } from "./client.js";
export type { ClientOptions } from "./client.js";
export * from "./errors.js";
export type * from "./types.js";
