import { describe, expect, test } from 'bun:test'
import { TrustedProxies, canonicalIp, isLoopback } from '../../src/http/client-ip'

describe('client IP resolution', () => {
  test('with no trusted proxies no peer is trusted: the peer is the client, whatever X-Forwarded-For says', () => {
    expect(TrustedProxies.parse('').contains('203.0.113.5')).toBe(false)
  })

  test('a trusted peer: the right-most address that is not itself trusted', () => {
    const trusted = TrustedProxies.parse('10.0.0.0/8, 192.168.1.1')
    expect(trusted.contains('10.0.0.2')).toBe(true)
    expect(trusted.clientBehind('10.0.0.2', '203.0.113.9')).toBe('203.0.113.9')
    expect(trusted.clientBehind('10.0.0.2', '1.1.1.1, 203.0.113.9, 192.168.1.1, 10.9.9.9')).toBe('203.0.113.9')
    expect(trusted.clientBehind('10.0.0.2', null)).toBe('10.0.0.2')
  })

  test('an untrusted peer is not believed, even when it sends X-Forwarded-For', () => {
    expect(TrustedProxies.parse('10.0.0.0/8').contains('198.51.100.4')).toBe(false)
  })

  test('all hops trusted: the left-most address', () => {
    expect(TrustedProxies.parse('10.0.0.0/8').clientBehind('10.0.0.2', '10.0.0.7, 10.0.0.3')).toBe('10.0.0.7')
  })

  test('garbage in X-Forwarded-For stops the walk at the last verified hop', () => {
    expect(TrustedProxies.parse('10.0.0.0/8').clientBehind('10.0.0.2', '203.0.113.1, not-an-ip')).toBe('10.0.0.2')
  })

  test('IPv6 ranges and IPv4-mapped peers', () => {
    const trusted = TrustedProxies.parse('fd00::/8, 127.0.0.1')
    expect(trusted.contains('fd00::1')).toBe(true)
    expect(trusted.clientBehind('fd00::1', '2001:db8::5')).toBe('2001:db8::5')
    expect(canonicalIp('::ffff:127.0.0.1')).toBe('127.0.0.1')
    expect(trusted.contains('::ffff:127.0.0.1')).toBe(true)
    expect(trusted.clientBehind(canonicalIp('::ffff:127.0.0.1'), '198.51.100.9')).toBe('198.51.100.9')
  })

  test('bad TRUST_PROXY entries are refused', () => {
    expect(() => TrustedProxies.parse('10.0.0.0/33')).toThrow()
    expect(() => TrustedProxies.parse('proxy.internal')).toThrow()
  })

  test('loopback detection covers both families and the mapped form', () => {
    expect(isLoopback('127.0.0.1')).toBe(true)
    expect(isLoopback('::1')).toBe(true)
    expect(isLoopback('::ffff:127.0.0.5')).toBe(true)
    expect(isLoopback('10.0.0.1')).toBe(false)
  })
})
