/**
 * Compiles the gateway into one executable, `bin/api-gateway`.
 * NODE_ENV is fixed to production at build time so Elysia runs in production mode.
 */
import { $ } from 'bun'

const outfile = process.argv[2] ?? 'bin/api-gateway'
await $`bun build --compile --minify --define process.env.NODE_ENV='"production"' src/main.ts --outfile ${outfile}`
console.log(`built ${outfile}`)
