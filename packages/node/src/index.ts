/**
 * @since 0.1.0
 */
export * as HsmLive from "./HsmLive.js"

/**
 * @since 0.1.0
 */
export * as NodePkcs11 from "./NodePkcs11.js"
