/**
 * @since 0.1.0
 */
export * as Algorithm from "./Algorithm.js"

/**
 * @since 0.1.0
 */
export * as Capabilities from "./Capabilities.js"

/**
 * @since 0.1.0
 */
export * as HsmError from "./HsmError.js"

/**
 * @since 0.1.0
 */
export * as HsmJwk from "./HsmJwk.js"

/**
 * @since 0.1.0
 */
export * as HsmSecret from "./HsmSecret.js"

/**
 * @since 0.1.0
 */
export * as HsmSession from "./HsmSession.js"

/**
 * @since 0.1.0
 */
export * as Jwe from "./Jwe.js"

/**
 * @since 0.1.0
 */
export * as Jwks from "./Jwks.js"

/**
 * @since 0.1.0
 */
export * as Jws from "./Jws.js"

/**
 * @since 0.1.0
 */
export * as Jwt from "./Jwt.js"

/**
 * @since 0.1.0
 */
export * as Provisioning from "./Provisioning.js"

/**
 * @since 0.1.0
 */
export * as SessionPool from "./SessionPool.js"
