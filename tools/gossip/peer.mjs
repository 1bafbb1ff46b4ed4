// A js-libp2p gossipsub peer for orbital's interop tests (tests/test_gossip_interop.py).
//
// Versions: js-libp2p 3.x (libp2p, @libp2p/gossipsub, @chainsafe/libp2p-noise,
// @chainsafe/libp2p-yamux, @libp2p/tcp, @libp2p/identify; exact pins in ../package.json). This
// is the line DESIGN.md measured interoperating with py-libp2p 0.8.1 (TCP + Noise + yamux,
// /meshsub/1.2.0). gossipsub needs @libp2p/identify: js-libp2p's registrar tells gossipsub
// about a peer only once identify has listed the peer's protocols.
//
// Node.js: js-libp2p 3.x's packages declare node >= 20 (p-retry: >= 22; npm only warns) but it
// runs on Node 18 -- Debian 12's apt nodejs (18.19), what scripts/setup.sh installs on a plain
// Debian 12 -- once the newer globals it calls are polyfilled below: Promise.withResolvers
// (Node 22; missing on 18 and 20) and CustomEvent (a global from Node 19), plus
// AbortSignal.any for 18.x/20.x releases older than 18.17/20.3. The polyfills must exist
// before any libp2p module is evaluated, hence the dynamic imports after them.
// tests/test_gossip_interop.py passes on Node 18.19 and 20 (ORBITAL_NODE picks the binary).
//
// Settings (the same as node/gossip/host.py): TCP on 127.0.0.1 only, Noise the only
// encrypter, yamux, gossipsub on one topic with message id = sha256(data), signed messages
// (StrictSign), heartbeat 1 s, emitSelf false, allowPublishToZeroTopicPeers false. The peer
// itself validates nothing: it publishes whatever it is told to, which is how the tests send
// forgeries at py-libp2p.
//
// Protocol: JSON lines. stdin (commands; an optional "id" is echoed back in the answer):
//   {"op":"dial","addr":"/ip4/127.0.0.1/tcp/P/p2p/Qm..."}  -> {"event":"dialed","peerId":...}
//   {"op":"publish","hex":"..."}        -> {"event":"published","msgId":hex,"recipients":[...]}
//   {"op":"peers"}                      -> {"event":"peers","connected":[...],
//                                            "subscribers":[...],"mesh":[...]}
//   {"op":"quit"}                       -> exits (also on EOF of stdin)
// stdout (events): {"event":"ready","peerId":...,"addrs":[...]} once listening,
//   {"event":"message","hex":...,"from":...,"msgId":...,"propagationSource":...} per message,
//   {"event":"error","op":...,"message":...} when a command (or libp2p) fails.
// Command line: --topic T, --port N (0 = any free port), --mesh D,Dlo,Dhi (mesh degrees; D=0
// makes a peer that keeps no mesh and so relays only through IHAVE/IWANT gossip).

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'

// ---- polyfills (before libp2p is loaded) --------------------------------------------------

if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
if (typeof globalThis.CustomEvent !== 'function') {
  globalThis.CustomEvent = class CustomEvent extends Event {
    #detail
    constructor (type, options = {}) {
      super(type, options)
      this.#detail = options.detail ?? null
    }

    get detail () { return this.#detail }
  }
}
if (typeof AbortSignal.any !== 'function') {
  AbortSignal.any = function any (signals) {
    const controller = new AbortController()
    for (const signal of signals) {
      if (signal.aborted) { controller.abort(signal.reason); break }
      signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true })
    }
    return controller.signal
  }
}

// ---- output ---------------------------------------------------------------------------------

function emit (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

const hex = (bytes) => Buffer.from(bytes).toString('hex')

process.on('unhandledRejection', (err) => {
  emit('error', { op: null, message: `unhandled rejection: ${err?.stack ?? err}` })
})

// ---- the node -------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    topic: { type: 'string', default: 'orbital/attestations/1' },
    port: { type: 'string', default: '0' },
    mesh: { type: 'string', default: '6,4,12' }
  }
})
const [D, Dlo, Dhi] = args.mesh.split(',').map(Number)

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { gossipsub, StrictSign } = await import('@libp2p/gossipsub')
const { multiaddr } = await import('@multiformats/multiaddr')

const sha256 = (data) => new Uint8Array(createHash('sha256').update(data).digest())

const node = await createLibp2p({
  addresses: { listen: [`/ip4/127.0.0.1/tcp/${Number(args.port)}`] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      msgIdFn: (msg) => sha256(msg.data),
      globalSignaturePolicy: StrictSign,
      heartbeatInterval: 1000,
      emitSelf: false,
      allowPublishToZeroTopicPeers: false,
      D,
      Dlo,
      Dhi,
      Dout: Math.min(2, Math.floor(D / 2)),
      // all peers share 127.0.0.1 in the tests: no IP-colocation penalty
      scoreParams: { IPColocationFactorWeight: 0 }
    })
  }
})
const pubsub = node.services.pubsub
const topic = args.topic

pubsub.addEventListener('gossipsub:message', (evt) => {
  const { msg, msgId, propagationSource } = evt.detail
  if (msg.topic !== topic) return
  emit('message', {
    hex: hex(msg.data),
    from: msg.type === 'signed' ? msg.from.toString() : null,
    msgId: hex(sha256(msg.data)),
    propagationSource: propagationSource.toString()
  })
})
pubsub.subscribe(topic)

const commands = {
  async dial ({ addr }) {
    const conn = await node.dial(multiaddr(addr))
    return { event: 'dialed', peerId: conn.remotePeer.toString() }
  },
  async publish ({ hex: data }) {
    if (typeof data !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(data)) {
      throw new Error('publish: "hex" must be an even-length hex string')
    }
    const bytes = new Uint8Array(Buffer.from(data, 'hex'))
    const { recipients } = await pubsub.publish(topic, bytes)
    return { event: 'published', msgId: hex(sha256(bytes)), recipients: recipients.map(String) }
  },
  async peers () {
    return {
      event: 'peers',
      connected: node.getPeers().map(String),
      subscribers: pubsub.getSubscribers(topic).map(String),
      mesh: pubsub.getMeshPeers(topic).map(String)
    }
  }
}

let quitting = false
async function quit () {
  if (quitting) return
  quitting = true
  try {
    await node.stop()
  } finally {
    process.exit(0)
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
lines.on('line', async (line) => {
  if (line.trim() === '') return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    emit('error', { op: null, message: `not JSON: ${err.message}` })
    return
  }
  const id = cmd.id ?? null
  if (cmd.op === 'quit') {
    await quit()
    return
  }
  const run = commands[cmd.op]
  if (run === undefined) {
    emit('error', { op: cmd.op ?? null, id, message: `unknown op ${JSON.stringify(cmd.op)}` })
    return
  }
  try {
    const { event, ...fields } = await run(cmd)
    emit(event, { id, ...fields })
  } catch (err) {
    emit('error', { op: cmd.op, id, message: `${err?.name ?? 'Error'}: ${err?.message ?? err}` })
  }
})
lines.on('close', () => { quit() })

emit('ready', {
  peerId: node.peerId.toString(),
  addrs: node.getMultiaddrs().map(String),
  node: process.versions.node
})
