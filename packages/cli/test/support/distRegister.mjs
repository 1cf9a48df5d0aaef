import { register } from "node:module"

register("./distResolve.mjs", import.meta.url)
