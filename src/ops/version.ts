import packageJson from '../../package.json' with { type: 'json' }

/** The gateway's semver, from package.json (bundled into the binary). */
export const VERSION: string = packageJson.version
