// Resolves the workspace's packages as an app that installed them does: their `exports` point at src/*.ts for
// development, and their publishConfig at dist/*.js, which `pnpm build` wrote. Node alone runs no TypeScript.
export const resolve = async (specifier, context, nextResolve) => {
  const resolved = await nextResolve(specifier, context)
  const source = /^(file:\/\/.*\/packages\/[^/]+\/)src\/(.*)\.ts$/.exec(resolved.url)
  return source === null ? resolved : { ...resolved, url: `${source[1]}dist/${source[2]}.js`, format: "module" }
}
