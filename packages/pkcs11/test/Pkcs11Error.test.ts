import { assert, describe, it } from "@effect/vitest"
import { Constants, Pkcs11Error } from "@hsmkey/pkcs11"
import { Cause } from "effect"

const { CKR } = Constants

describe("Pkcs11Error", () => {
  it("names every return value of PKCS#11 2.40 and 3.0", () => {
    for (const [name, code] of Object.entries(CKR)) {
      assert.strictEqual(Constants.returnValueName(code), `CKR_${name}`)
    }
    assert.strictEqual(Constants.returnValueName(0x42), "CKR_AEAD_DECRYPT_FAILED")
    assert.strictEqual(Constants.returnValueName(0x201), "CKR_TOKEN_RESOURCE_EXCEEDED")
    assert.strictEqual(Constants.returnValueName(0x80000005), "CKR_VENDOR_DEFINED+0x5")
    assert.strictEqual(Constants.returnValueName(0x1234), "CKR_0x00001234")
  })

  it("maps the return values a caller acts on to their own classes", () => {
    const cases: ReadonlyArray<readonly [number, string, string?]> = [
      [CKR.PIN_INCORRECT, "PinIncorrect"],
      [CKR.PIN_LOCKED, "PinLocked"],
      [CKR.PIN_EXPIRED, "PinExpired"],
      [CKR.PIN_LEN_RANGE, "PinInvalid"],
      [CKR.PIN_INVALID, "PinInvalid"],
      [CKR.SESSION_HANDLE_INVALID, "SessionFailed", "closed"],
      [CKR.SESSION_CLOSED, "SessionFailed", "closed"],
      [CKR.SESSION_COUNT, "SessionFailed", "limit"],
      [CKR.SESSION_READ_ONLY, "SessionFailed", "read-only"],
      [CKR.USER_NOT_LOGGED_IN, "SessionFailed", "not-logged-in"],
      [CKR.USER_ANOTHER_ALREADY_LOGGED_IN, "SessionFailed", "conflict"],
      [CKR.TOKEN_NOT_PRESENT, "TokenNotPresent"],
      [CKR.DEVICE_REMOVED, "TokenNotPresent"],
      [CKR.SLOT_ID_INVALID, "TokenNotPresent"],
      [CKR.MECHANISM_INVALID, "MechanismInvalid"],
      [CKR.MECHANISM_PARAM_INVALID, "MechanismInvalid"],
      [CKR.OBJECT_HANDLE_INVALID, "ObjectHandleInvalid"],
      [CKR.KEY_HANDLE_INVALID, "ObjectHandleInvalid"],
      [CKR.GENERAL_ERROR, "Pkcs11Error"],
      [CKR.KEY_FUNCTION_NOT_PERMITTED, "Pkcs11Error"]
    ]
    for (const [code, tag, reason] of cases) {
      const error = Pkcs11Error.fromReturnValue("C_Test", code)
      assert.strictEqual(error._tag, tag, Constants.returnValueName(code))
      if (reason !== undefined) assert.strictEqual((error as Pkcs11Error.SessionFailed).reason, reason)
      assert.isTrue(Pkcs11Error.isPkcs11Failure(error))
    }
  })

  it("keeps the method, the code and its name, and says them in the message", () => {
    const error = Pkcs11Error.fromReturnValue("C_Sign", CKR.DEVICE_ERROR)
    assert.instanceOf(error, Pkcs11Error.Pkcs11Error)
    const { code, method, returnValue } = error as Pkcs11Error.Pkcs11Error
    assert.deepStrictEqual({ code, method, returnValue }, {
      code: 0x30,
      method: "C_Sign",
      returnValue: "CKR_DEVICE_ERROR"
    })
    assert.strictEqual(error.message, "C_Sign failed: CKR_DEVICE_ERROR (0x00000030)")
    // No field shadows Error's own: every failure prints as its tag and its message.
    assert.strictEqual(error.name, "Pkcs11Error")
    assert.isTrue(Cause.pretty(Cause.fail(error)).startsWith("Pkcs11Error: C_Sign failed: CKR_DEVICE_ERROR"))
    const mechanism = Pkcs11Error.fromReturnValue("C_SignInit", CKR.MECHANISM_PARAM_INVALID, { mechanism: 0x43 })
    assert.include(mechanism.message, "CKM_SHA256_RSA_PKCS_PSS with these parameters")
    const pin = Pkcs11Error.fromReturnValue("C_Login", CKR.PIN_INCORRECT, { token: "prod" })
    assert.include(pin.message, "token \"prod\"")
  })

  it("is not fooled by look-alikes", () => {
    assert.isFalse(Pkcs11Error.isPkcs11Failure({ _tag: "PinIncorrect" }))
    assert.isFalse(Pkcs11Error.isPkcs11Failure(new Error("CKR_PIN_INCORRECT")))
  })
})
