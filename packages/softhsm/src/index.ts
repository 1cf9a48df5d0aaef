/**
 * @since 0.1.0
 */
export * as SoftHsm from "./SoftHsm.js"
