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
export * as HsmLive from "./HsmLive.js"

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
