/**
 * `bun run bench` — the gateway against nginx and direct-to-backend, event streams at scale,
 * the feature ladder, the rate limiter and cluster mode (Redis) against the embedded default. `bun run bench -- --quick` for a pass of about two minutes.
 *
 * Installs what it needs (wrk, nginx) with apt-get when missing, builds bin/api-gateway, pins
 * the load generator and the servers under test to different cores, and writes the figures to
 * bench-results/latest.json (plus a dated copy).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { CLIENT_CORE, CORES, SERVER_CORE, UNPINNED } from './processes'
import { type AuthRound, runAuthScenarios } from './auth-scenarios'
import { type EventRound, type LimiterRound, runClusterScenarios } from './cluster-scenarios'
import { type InstancesRound, type WebSocketRound, runUpstreamScenarios } from './upstream-scenarios'
import { type WorkersRound, runWorkersScenarios } from './workers-scenarios'
import type { WrkResult } from './wrk'
import { type LadderResult, runLadder } from './ladder-scenarios'
import { type RoundResult, runProxyScenarios } from './proxy-scenarios'
import { type PolicyRound, runPolicyScenarios } from './policy-scenarios'
import { type AnswerRound, type ExpiryRun, runQuestionScenarios } from './question-scenarios'
import { type ReplayRound, runReplayScenarios } from './replay-scenarios'
import { type SseResult, runSseScenario } from './sse-scenarios'

const ROOT = new URL('../..', import.meta.url).pathname
const quick = process.argv.includes('--quick')
/** `--only proxy|ladder|sse|replay|limiter|cluster|auth|policies|questions|upstream|workers`: one part, for tuning sessions. */
const only = process.argv[process.argv.indexOf('--only') + 1]
const runs = (part: string) => !process.argv.includes('--only') || only === part
const log = (line: string) => console.log(line)

/** `--streams 10000` overrides the stream counts of the SSE part. */
const streamsOverride = process.argv.includes('--streams') ? [Number(process.argv[process.argv.indexOf('--streams') + 1])] : undefined
/** `--compare label=path` (repeatable): another gateway build measured beside this one, for A/B runs. */
const compare: Record<string, string> = {}
process.argv.forEach((arg, i) => {
  if (arg !== '--compare') return
  const [label, path] = (process.argv[i + 1] ?? '').split('=')
  if (!label || !path) throw new Error('--compare needs label=path/to/binary')
  compare[label] = path
})
/** `--rounds N` overrides the number of proxy rounds. */
const roundsOverride = process.argv.includes('--rounds') ? Number(process.argv[process.argv.indexOf('--rounds') + 1]) : undefined
// -c64 is what the earlier runs reported; -c256 is above the 64 idle sockets Bun's fetch keeps per host.
const planned = quick
  ? { rounds: 2, seconds: 3, connections: [64, 256], sseStreams: [1_000], sseRounds: 1 }
  : { rounds: 7, seconds: 10, connections: [64, 256], sseStreams: [1_000, 10_000, 19_900], sseRounds: 3 }
/** `--sse-rounds N` overrides the number of interleaved rounds of the SSE part. */
const sseRoundsOverride = process.argv.includes('--sse-rounds') ? Number(process.argv[process.argv.indexOf('--sse-rounds') + 1]) : undefined
const plan = { ...planned, rounds: roundsOverride ?? planned.rounds, sseStreams: streamsOverride ?? planned.sseStreams, sseRounds: sseRoundsOverride ?? planned.sseRounds }

await ensureTools()
await Bun.$`bun ${ROOT}scripts/build.ts --if-stale`.cwd(ROOT)
const binary = `${ROOT}bin/api-gateway`
const started = new Date()
log(`api-gateway benchmark (${quick ? 'quick' : 'full'}) on ${CORES} cores: ${UNPINNED ? 'nothing pinned' : `load on cores ${CLIENT_CORE}, servers on cores ${SERVER_CORE}`}`)

let rounds: RoundResult[] = []
let summary: ScenarioSummary[] | undefined
if (runs('proxy')) {
  log(`\nProxy throughput (wrk -t1 -c${plan.connections.join('/-c')}, ${plan.rounds} interleaved rounds of ${plan.seconds} s):`)
  rounds = await runProxyScenarios({ ...plan, binary, compare, workDir: ROOT }, log)
  summary = summarize(rounds)
  printProxyTable(summary)
}

let ladder: LadderResult[] | undefined
if (runs('ladder')) {
  const ladderPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 5, connections: 64 }
  log(`\nFeature ladder (wrk -t1 -c${ladderPlan.connections}, ${ladderPlan.rounds} interleaved rounds of ${ladderPlan.seconds} s): the least each required feature costs`)
  ladder = await runLadder({ ...ladderPlan, binary }, log)
  printLadderTable(ladder)
}

const sse: SseResult[] = []
let retention: { hubEmpty: boolean; liveHeapBytesAfterEachDrop: number[]; growthFirstToLast: number } | undefined
if (runs('sse')) {
  log(`\nEvent streams (raw-socket load client in its own process; baseline: bare Bun streams, one cycle; ${plan.sseRounds} interleaved rounds, medians):`)
  for (const streams of plan.sseStreams) {
    // Interleaved (bare, gateway, bare, gateway, ...): run in sequence, one build's broadcast p99 varied 1.06× to 1.32× of bare between runs.
    for (let round = 1; round <= plan.sseRounds; round++) {
      sse.push(await runSseScenario('bare', binary, streams, 1, log))
      // `--direct-streams`: would Bun's direct streams deliver a broadcast faster? (the bare baseline on them)
      if (process.argv.includes('--direct-streams')) sse.push(await runSseScenario('bare-direct', binary, streams, 1, log))
      sse.push(await runSseScenario('gateway', binary, streams, 3, log))
      for (const [label, other] of Object.entries(compare)) sse.push(await runSseScenario('gateway', other, streams, 3, log, `gateway ${label}`))
    }
  }
  printSseTable(sse)
  const retentionStreams = quick ? 1_000 : 10_000
  log(`\nRetention (in-process gateway, ${retentionStreams} streams × 3 cycles, live heap after a full GC):`)
  retention = JSON.parse(await Bun.$`bun ${ROOT}scripts/bench/retention.ts ${retentionStreams} 3`.text())
  log(
    `  hub empty: ${retention!.hubEmpty}; live heap after each drop: ${retention!.liveHeapBytesAfterEachDrop.map((b) => (b / 1e6).toFixed(2)).join(' → ')} MB (${(retention!.growthFirstToLast * 100).toFixed(1)}%; what stays is each client's replay history)`,
  )
}

let replay: ReplayRound[] | undefined
if (runs('replay')) {
  const replayPlan = { rounds: quick ? 1 : 3, streamCounts: [32, 64], events: 100, eventBytes: 60_000 }
  log(
    `\nReplay amplification (${replayPlan.rounds} interleaved rounds): ${replayPlan.events} events of ${replayPlan.eventBytes / 1000} KB for one client, asked for whole by idle streams that never read; RSS growth of the gateway`,
  )
  replay = await runReplayScenarios({ ...replayPlan, builds: { current: binary, ...compare } }, log)
  printReplayTable(replay)
}

let limiter: { decisionsPerSecond: number; bytesPerAddress: number } | undefined
if (runs('limiter')) {
  log('\nRate limiter:')
  limiter = JSON.parse(await Bun.$`bun ${ROOT}scripts/bench/ratelimit.ts ${quick ? '--quick' : ''}`.text())
  log(`  ${(limiter!.decisionsPerSecond / 1e6).toFixed(2)} M decisions/s, ${limiter!.bytesPerAddress} bytes per tracked address`)
}

let cluster: { events: EventRound[]; limiter: LimiterRound[] } | undefined
if (runs('cluster')) {
  const clusterPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 8, streams: 1_000, publishers: 16, connections: 64 }
  log(
    `\nCluster mode (${clusterPlan.rounds} interleaved rounds of ${clusterPlan.seconds} s): ${clusterPlan.streams} streams, ${clusterPlan.publishers} publishers through one gateway; proxy -c${clusterPlan.connections} by limiter`,
  )
  cluster = await runClusterScenarios({ ...clusterPlan, binary }, log)
  printClusterTables(cluster)
}

let auth: AuthRound[] | undefined
if (runs('auth')) {
  const authPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 8, connections: 64 }
  log(`\nAuthentication (wrk -t1 -c${authPlan.connections}, ${authPlan.rounds} interleaved rounds of ${authPlan.seconds} s): proxy throughput by token kind, against authentication off`)
  auth = await runAuthScenarios({ ...authPlan, binary }, log)
  printAuthTable(auth)
}

let policies: PolicyRound[] | undefined
if (runs('policies')) {
  const policyPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 8, connections: 64 }
  log(
    `\nPolicies (wrk -t1 -c${policyPlan.connections}, ${policyPlan.rounds} interleaved rounds of ${policyPlan.seconds} s): a file of 50 services and 200 routes against none; a route's header rules and require against the same token without a file; a SIGHUP every 100 ms against none`,
  )
  policies = await runPolicyScenarios({ ...policyPlan, binary }, log)
  printPolicyTable(policies)
}

let questions: { answers: AnswerRound[]; expiries: ExpiryRun[] } | undefined
if (runs('questions')) {
  const questionPlan = { rounds: quick ? 2 : 5, answers: quick ? 5_000 : 20_000, expiries: 10_000, concurrency: 64, binary }
  log(
    `\nQuestions: ${questionPlan.answers} answers (${questionPlan.concurrency} at a time) with an answer schema against without, ${questionPlan.rounds} interleaved rounds; ${questionPlan.expiries} questions whose deadlines fall in the same second, memory and Redis`,
  )
  questions = await runQuestionScenarios(questionPlan, log)
  printQuestionTables(questions)
}

let upstream: { instances: InstancesRound[]; websocket: WebSocketRound[] } | undefined
if (runs('upstream')) {
  const upstreamPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 8, connections: 64 }
  log(`\nInstances and WebSockets (${upstreamPlan.rounds} interleaved rounds of ${upstreamPlan.seconds} s, ${upstreamPlan.connections} connections): proxy through 2 instances against 1; WebSocket echo through the gateway against direct`)
  upstream = await runUpstreamScenarios({ ...upstreamPlan, binary }, log)
  printUpstreamTables(upstream)
}

let workers: WorkersRound[] | undefined
if (runs('workers')) {
  // `--workers N` compares N with 1 (default 2).
  const count = process.argv.includes('--workers') ? Number(process.argv[process.argv.indexOf('--workers') + 1]) : 2
  const workersPlan = { rounds: quick ? 2 : 5, seconds: quick ? 3 : 8, connections: 128, workers: count }
  log(`\nWorkers (${workersPlan.rounds} interleaved rounds of ${workersPlan.seconds} s, wrk -t2 -c${workersPlan.connections}, nothing pinned): WORKERS=${count} against WORKERS=1, both with Redis, rate limiting off`)
  workers = await runWorkersScenarios({ ...workersPlan, binary }, log)
  printWorkersTable(workers)
}

const results = {
  date: started.toISOString(),
  mode: quick ? 'quick' : 'full',
  machine: { cores: CORES, cpu: cpuModel(), clientCore: CLIENT_CORE, serverCore: SERVER_CORE, bun: Bun.version },
  plan,
  compare,
  proxy: { summary, rounds },
  ladder,
  sse,
  retention,
  replay,
  limiter,
  cluster,
  auth,
  policies,
  questions,
  upstream,
  workers,
}
mkdirSync(`${ROOT}bench-results`, { recursive: true })
const json = JSON.stringify(results, null, 2)
writeFileSync(`${ROOT}bench-results/latest.json`, json)
writeFileSync(`${ROOT}bench-results/${started.toISOString().replaceAll(':', '-')}.json`, json)
log(`\nResults: bench-results/latest.json`)

interface ScenarioSummary {
  scenario: string
  connections: number
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  proxyCpuUsPerRequest: number
  totalCpuUsPerRequest: number
  errors: number
  vsNginx: number
  vsDirect: number
  vsBunFetch: number
  p99VsNginx: number
  p99VsBunFetch: number
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** Medians per scenario and connection count, with ratios to the baselines at the same count. */
function summarize(all: RoundResult[]): ScenarioSummary[] {
  const keys = [...new Set(all.map((r) => `${r.connections} ${r.scenario}`))]
  const base = keys.map((key) => {
    const runs = all.filter((r) => `${r.connections} ${r.scenario}` === key)
    return {
      scenario: runs[0]!.scenario,
      connections: runs[0]!.connections,
      requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
      p50Ms: median(runs.map((r) => r.p50Ms)),
      p99Ms: median(runs.map((r) => r.p99Ms)),
      proxyCpuUsPerRequest: median(runs.map((r) => r.proxyCpuUsPerRequest)),
      totalCpuUsPerRequest: median(runs.map((r) => r.totalCpuUsPerRequest)),
      errors: runs.reduce((sum, r) => sum + r.errors, 0),
    }
  })
  const find = (scenario: string, connections: number) => base.find((b) => b.scenario === scenario && b.connections === connections)!
  return base.map((b) => {
    const nginx = find('nginx', b.connections)
    const direct = find('direct', b.connections)
    const bunFetch = find('bun-fetch', b.connections)
    return {
      ...b,
      vsNginx: b.requestsPerSecond / nginx.requestsPerSecond,
      vsDirect: b.requestsPerSecond / direct.requestsPerSecond,
      vsBunFetch: b.requestsPerSecond / bunFetch.requestsPerSecond,
      p99VsNginx: b.p99Ms / nginx.p99Ms,
      p99VsBunFetch: b.p99Ms / bunFetch.p99Ms,
    }
  })
}

function printProxyTable(summary: ScenarioSummary[]): void {
  log('\n| -c | scenario | req/s (median) | p50 ms | p99 ms | proxy CPU µs/req | × nginx | × bun-fetch | × direct | p99 × nginx | p99 × bun-fetch | errors |')
  log('|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const s of summary) {
    log(
      `| ${s.connections} | ${s.scenario} | ${Math.round(s.requestsPerSecond)} | ${s.p50Ms.toFixed(2)} | ${s.p99Ms.toFixed(2)} | ${s.proxyCpuUsPerRequest.toFixed(1)} | ${s.vsNginx.toFixed(2)} | ${s.vsBunFetch.toFixed(2)} | ${s.vsDirect.toFixed(2)} | ${s.p99VsNginx.toFixed(2)} | ${s.p99VsBunFetch.toFixed(2)} | ${s.errors} |`,
    )
  }
}

function printLadderTable(results: LadderResult[]): void {
  const floor = results[0]!
  log('\n| rung | req/s (median) | p99 ms | CPU µs/req | × rung 0 req/s | × rung 0 CPU |')
  log('|---|---|---|---|---|---|')
  for (const r of results) {
    log(
      `| ${r.label} | ${Math.round(r.requestsPerSecond)} | ${r.p99Ms.toFixed(2)} | ${r.cpuUsPerRequest.toFixed(1)} | ${(r.requestsPerSecond / floor.requestsPerSecond).toFixed(2)} | ${(r.cpuUsPerRequest / floor.cpuUsPerRequest).toFixed(2)} |`,
    )
  }
}

/** Medians over every broadcast of the results (the rounds of one server at one stream count). */
export function broadcastMedians(results: SseResult[]) {
  const all = results.flatMap((r) => r.cycles.flatMap((c) => c.broadcasts))
  return {
    p50Ms: median(all.map((b) => b.p50Ms)),
    p99Ms: median(all.map((b) => b.p99Ms)),
    maxMs: median(all.map((b) => b.maxMs)),
    allDelivered: all.every((b) => b.received === b.streams),
  }
}

function printSseTable(results: SseResult[]): void {
  log('\n| server | streams | rounds | RSS/stream KB | × bare | broadcast p50 ms | p99 ms | p99 × bare | max ms | all delivered | empty after each drop | growth over 3 cycles |')
  log('|---|---|---|---|---|---|---|---|---|---|---|---|')
  const groups = [...new Set(results.map((r) => `${r.streams} ${r.label}`))]
  for (const key of groups) {
    const rows = results.filter((r) => `${r.streams} ${r.label}` === key)
    const bare = results.filter((b) => b.server === 'bare' && b.streams === rows[0]!.streams)
    const m = broadcastMedians(rows)
    const b = broadcastMedians(bare)
    const perStream = median(rows.map((r) => r.cycles[0]!.rssBytesPerStream))
    const barePerStream = median(bare.map((r) => r.cycles[0]!.rssBytesPerStream))
    const growth = rows[0]!.cycles.length > 1 ? `${(median(rows.map((r) => r.rssGrowthAfterCycles)) * 100).toFixed(1)}%` : '–'
    log(
      `| ${rows[0]!.label} | ${rows[0]!.streams} | ${rows.length} | ${(perStream / 1024).toFixed(2)} | ${(perStream / barePerStream).toFixed(2)} | ${m.p50Ms.toFixed(1)} | ${m.p99Ms.toFixed(1)} | ${(m.p99Ms / b.p99Ms).toFixed(2)} | ${m.maxMs.toFixed(1)} | ${m.allDelivered} | ${rows.every((r) => r.cycles.every((c) => c.hubEmptyAfterDrop))} | ${growth} |`,
    )
  }
}

function printQuestionTables({ answers, expiries }: { answers: AnswerRound[]; expiries: ExpiryRun[] }): void {
  const without = median(answers.filter((r) => !r.schema).map((r) => r.perSecond))
  const withSchema = median(answers.filter((r) => r.schema).map((r) => r.perSecond))
  log('\n| answers | per second (median) | × without a schema | failed |')
  log('|---|---|---|---|')
  log(`| without a schema | ${Math.round(without)} | 1.00 | ${answers.filter((r) => !r.schema).reduce((sum, r) => sum + r.failed, 0)} |`)
  log(`| with a schema | ${Math.round(withSchema)} | ${(withSchema / without).toFixed(2)} | ${answers.filter((r) => r.schema).reduce((sum, r) => sum + r.failed, 0)} |`)
  log('\n| broker | questions | expiries at hitl | POSTs | first after the deadline ms | last ms | gateway KiB per pending question | Redis KiB per pending question |')
  log('|---|---|---|---|---|---|---|---|')
  for (const run of expiries) {
    log(
      `| ${run.broker} | ${run.questions} | ${run.delivered} | ${run.posts} | ${run.firstAfterDeadlineMs} | ${run.lastAfterDeadlineMs} | ${(run.gatewayBytesPerQuestion / 1024).toFixed(2)} | ${run.redisBytesPerQuestion === null ? '—' : (run.redisBytesPerQuestion / 1024).toFixed(2)} |`,
    )
  }
}

function printReplayTable(rounds: ReplayRound[]): void {
  log('\n| build | broker | streams asked | held (median) | RSS growth MB (median) | KB per stream asked | × current | Redis outages |')
  log('|---|---|---|---|---|---|---|---|')
  const groups = [...new Set(rounds.map((r) => `${r.streams} ${r.broker} ${r.build}`))]
  for (const key of groups) {
    const rows = rounds.filter((r) => `${r.streams} ${r.broker} ${r.build}` === key)
    const { streams, broker, build } = rows[0]!
    const current = rounds.filter((r) => r.streams === streams && r.broker === broker && r.build === 'current')
    const growth = median(rows.map((r) => r.rssGrowthBytes))
    log(
      `| ${build} | ${broker} | ${streams} | ${median(rows.map((r) => r.held))} | ${(growth / 1e6).toFixed(1)} | ${(growth / streams / 1024).toFixed(0)} | ${(growth / median(current.map((r) => r.rssGrowthBytes))).toFixed(1)} | ${rows.reduce((sum, r) => sum + r.redisOutages, 0)} |`,
    )
  }
}

function printClusterTables({ events, limiter }: { events: EventRound[]; limiter: LimiterRound[] }): void {
  const by = <T,>(rows: T[], pick: (row: T) => number) => median(rows.map(pick))
  const memory = events.filter((e) => e.broker === 'memory')
  log('\n| broker | streams | events/s (median) | × memory | delivery p50 ms | p99 ms | p99 × memory | received/accepted |')
  log('|---|---|---|---|---|---|---|---|')
  for (const broker of ['memory', 'redis'] as const) {
    const rows = events.filter((e) => e.broker === broker)
    log(
      `| ${broker} | ${rows[0]!.streams} | ${Math.round(by(rows, (r) => r.eventsPerSecond))} | ${(by(rows, (r) => r.eventsPerSecond) / by(memory, (r) => r.eventsPerSecond)).toFixed(2)} | ${by(rows, (r) => r.p50Ms).toFixed(2)} | ${by(rows, (r) => r.p99Ms).toFixed(2)} | ${(by(rows, (r) => r.p99Ms) / by(memory, (r) => r.p99Ms)).toFixed(2)} | ${rows.reduce((s, r) => s + r.received, 0)}/${rows.reduce((s, r) => s + r.accepted, 0)} |`,
    )
  }
  const local = limiter.filter((l) => l.limiter === 'local')
  printWrkRatioTable(
    'rate limiter',
    'local',
    (['local', 'redis'] as const).map((kind) => ({ label: kind, rows: limiter.filter((l) => l.limiter === kind), base: local })),
  )
}

/**
 * A Markdown table of wrk rounds, one row per group: median req/s, p50 and p99, and the ratios of
 * req/s and p99 to the group's baseline rounds (measured in the same run).
 */
function printWrkRatioTable(heading: string, baseName: string, groups: { label: string | number; rows: WrkResult[]; base: WrkResult[] }[]): void {
  const by = (rows: WrkResult[], pick: (row: WrkResult) => number) => median(rows.map(pick))
  log(`\n| ${heading} | req/s (median) | × ${baseName} | p50 ms | p99 ms | p99 × ${baseName} | errors |`)
  log('|---|---|---|---|---|---|---|')
  for (const { label, rows, base } of groups) {
    log(
      `| ${label} | ${Math.round(by(rows, (r) => r.requestsPerSecond))} | ${(by(rows, (r) => r.requestsPerSecond) / by(base, (r) => r.requestsPerSecond)).toFixed(2)} | ${by(rows, (r) => r.p50Ms).toFixed(2)} | ${by(rows, (r) => r.p99Ms).toFixed(2)} | ${(by(rows, (r) => r.p99Ms) / by(base, (r) => r.p99Ms)).toFixed(2)} | ${rows.reduce((s, r) => s + r.errors, 0)} |`,
    )
  }
}

function printAuthTable(rounds: AuthRound[]): void {
  const scenarios = ['off', 'hs256', 'rs256', 'off-distinct', 'hs256-distinct', 'rs256-distinct'] as const
  const of = (scenario: string) => rounds.filter((r) => r.scenario === scenario)
  printWrkRatioTable(
    'authentication',
    'off',
    // Distinct tokens come from a wrk script: their baseline is authentication off with the same script.
    scenarios.map((scenario) => ({ label: scenario, rows: of(scenario), base: of(scenario.endsWith('-distinct') ? 'off-distinct' : 'off') })),
  )
}

function printPolicyTable(rounds: PolicyRound[]): void {
  const of = (scenario: string) => rounds.filter((r) => r.scenario === scenario)
  // Each scenario against its baseline, measured in the same run.
  const pairs: [string, string][] = [
    ['file, a service it does not name', 'no file'],
    ['50 services, 200 routes', 'no file'],
    ['50 services, 200 routes', 'file, a service it does not name'],
    ['route rules + require', 'auth, no rules'],
    ['reload storm', 'no reloads'],
  ]
  log('\n| policies | req/s (median) | baseline | × baseline | p99 ms | p99 × baseline | gateway CPU µs/req | CPU × baseline | errors |')
  log('|---|---|---|---|---|---|---|---|---|')
  const by = (scenario: string, pick: (row: PolicyRound) => number) => median(of(scenario).map(pick))
  for (const [scenario, base] of pairs) {
    log(
      `| ${scenario} | ${Math.round(by(scenario, (r) => r.requestsPerSecond))} | ${base} | ${(by(scenario, (r) => r.requestsPerSecond) / by(base, (r) => r.requestsPerSecond)).toFixed(2)} | ${by(scenario, (r) => r.p99Ms).toFixed(2)} | ${(by(scenario, (r) => r.p99Ms) / by(base, (r) => r.p99Ms)).toFixed(2)} | ${by(scenario, (r) => r.cpuUsPerRequest).toFixed(1)} | ${(by(scenario, (r) => r.cpuUsPerRequest) / by(base, (r) => r.cpuUsPerRequest)).toFixed(2)} | ${of(scenario).reduce((sum, r) => sum + r.errors, 0)} |`,
    )
  }
}

function printUpstreamTables({ instances, websocket }: { instances: InstancesRound[]; websocket: WebSocketRound[] }): void {
  const by = <T,>(rows: T[], pick: (row: T) => number) => median(rows.map(pick))
  const one = instances.filter((r) => r.scenario === '1 instance')
  printWrkRatioTable(
    'service',
    '1 instance',
    (['1 instance', '2 instances'] as const).map((scenario) => ({ label: scenario, rows: instances.filter((r) => r.scenario === scenario), base: one })),
  )
  const direct = websocket.filter((r) => r.scenario === 'direct')
  const relay = websocket.filter((r) => r.scenario === 'bare-relay')
  log('\n| WebSocket echo | messages/s (median) | × direct | × bare relay | p50 ms | p99 ms | p99 × direct | p99 × bare relay | errors |')
  log('|---|---|---|---|---|---|---|---|---|')
  for (const scenario of ['direct', 'bare-relay', 'gateway'] as const) {
    const rows = websocket.filter((r) => r.scenario === scenario)
    const rate = by(rows, (r) => r.messagesPerSecond)
    const p99 = by(rows, (r) => r.p99Ms)
    log(
      `| ${scenario} | ${Math.round(rate)} | ${(rate / by(direct, (r) => r.messagesPerSecond)).toFixed(2)} | ${(rate / by(relay, (r) => r.messagesPerSecond)).toFixed(2)} | ${by(rows, (r) => r.p50Ms).toFixed(2)} | ${p99.toFixed(2)} | ${(p99 / by(direct, (r) => r.p99Ms)).toFixed(2)} | ${(p99 / by(relay, (r) => r.p99Ms)).toFixed(2)} | ${rows.reduce((s, r) => s + r.errors, 0)} |`,
    )
  }
}

function printWorkersTable(rounds: WorkersRound[]): void {
  const one = rounds.filter((r) => r.workers === 1)
  const counts = [...new Set(rounds.map((r) => r.workers))]
  printWrkRatioTable('WORKERS', '1', counts.map((count) => ({ label: count, rows: rounds.filter((r) => r.workers === count), base: one })))
}

function cpuModel(): string {
  try {
    return /model name\s*:\s*(.+)/.exec(require('node:fs').readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

async function ensureTools(): Promise<void> {
  const missing = []
  if (!Bun.which('wrk')) missing.push('wrk')
  if (!Bun.which('nginx') && !Bun.which('nginx', { PATH: '/usr/sbin' })) missing.push('nginx')
  if (!Bun.which('redis-server')) missing.push('redis-server')
  if (CORES >= 2 && !Bun.which('taskset')) missing.push('util-linux')
  if (missing.length === 0) return
  log(`installing ${missing.join(', ')} with apt-get`)
  await Bun.$`apt-get update -qq`
  await Bun.$`DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing}`.quiet()
}
