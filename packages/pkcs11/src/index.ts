/**
 * @since 0.1.0
 */
export * as Attribute from "./Attribute.js"

/**
 * @since 0.1.0
 */
export * as Constants from "./Constants.js"

/**
 * @since 0.1.0
 */
export * as Curve from "./Curve.js"

/**
 * @since 0.1.0
 */
export * as MemoryPkcs11 from "./MemoryPkcs11.js"

/**
 * @since 0.1.0
 */
export * as Pkcs11 from "./Pkcs11.js"

/**
 * @since 0.1.0
 */
export * as Pkcs11Driver from "./Pkcs11Driver.js"

/**
 * @since 0.1.0
 */
export * as Pkcs11Error from "./Pkcs11Error.js"
