/**
 * @since 0.1.0
 */
export * as HttpJwks from "./HttpJwks.js"
