/**
 * The console page `api-gateway demo` serves at `/` (README, "Demo"): the human-in-the-loop
 * client of `examples/hitl.html`, embedded in the binary, told that it runs in the demo (its
 * button that starts an agent run, the dashboard link when there is one). It loads nothing from
 * the network, and its policy says so.
 */
import examplePage from '../../examples/hitl.html' with { type: 'text' }

/** What the page learns of the demo (`window.GATEWAY_DEMO`). */
export interface ConsoleSettings {
  /** The dashboard's URL; null while there is none. */
  dashboard: string | null
}

const PLACEHOLDER = '/*GATEWAY_DEMO*/'

const HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  // Its own inline script and style, requests to this gateway, nothing else; never framed.
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
}

/**
 * The page with its settings, as the handler of `GET /` answers it.
 * @example consoleHandler({ dashboard: null })().headers.get('content-type') // 'text/html; charset=utf-8'
 */
export function consoleHandler(settings: ConsoleSettings): () => Response {
  // Bun's text import: the file's contents, bundled into the binary.
  const script = `window.GATEWAY_DEMO = ${JSON.stringify(settings).replaceAll('<', '\\u003c')}`
  // A function, so `$&` or `$'` in the settings is never read as a replacement pattern.
  const page = (examplePage as unknown as string).replace(PLACEHOLDER, () => script)
  return () => new Response(page, { headers: HEADERS })
}
