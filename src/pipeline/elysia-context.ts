/**
 * The Elysia side of the pipeline: every route of the app receives the request's
 * `RequestContext` as `ctx`, through Elysia's own `derive`.
 * @example new Elysia().use(requestContext).get('/x', ({ ctx }) => ctx.requestId)
 */
import { Elysia } from 'elysia'
import { contextOf } from './context'

export const requestContext = new Elysia({ name: 'request-context' }).derive({ as: 'global' }, ({ request }) => ({ ctx: contextOf(request) }))
