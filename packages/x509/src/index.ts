/**
 * @since 0.1.0
 */
export * as Csr from "./Csr.js"

/**
 * @since 0.1.0
 */
export * as DistinguishedName from "./DistinguishedName.js"

/**
 * @since 0.1.0
 */
export * as X509Error from "./X509Error.js"
