'use strict'
// The Docker Engine peer of bench/containers.js: a private dockerd (scripts/peers/dockerd.sh)
// or $STRATA_BENCH_DOCKER_HOST, and CPU accounting for the daemon side.
//
// The work of `docker create/run/commit` happens in dockerd, containerd, containerd-shim and
// runc, none of which the bench process waits for, so /proc/self/stat's cutime misses it. When
// we may (root, cgroup v1 cpuacct or cgroup v2), dockerd and its descendants are moved into a
// cgroup of their own — processes they start later (shims, runc) are born into it — and its
// CPU counter is read around each timed operation. The container processes themselves go to
// Docker's own cgroups (/docker/<id>): for `true` that is next to nothing.

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const c = require('./common')

const PIDFILE = '/run/strata-bench-docker.pid'
const CG_NAME = 'strata-bench-docker'

function children(pid) {
  const out = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      const ppid = st.slice(st.lastIndexOf(')') + 2).split(' ')[1]
      if (ppid === String(pid)) out.push(Number(d))
    } catch { /* gone */ }
  }
  return out
}

function descendants(pid) {
  const all = [pid]
  for (let i = 0; i < all.length; i++) all.push(...children(all[i]))
  return all
}

/** A cgroup whose CPU counter covers dockerd and everything it starts; null with a reason when not possible. */
function daemonCpuGroup(pid) {
  const v1 = '/sys/fs/cgroup/cpuacct'
  const v2 = fs.existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : null
  let dir
  let read
  let home
  if (fs.existsSync(path.join(v1, 'cpuacct.usage'))) {
    dir = path.join(v1, CG_NAME)
    read = () => Number(fs.readFileSync(path.join(dir, 'cpuacct.usage'), 'utf8')) / 1e9
    home = path.join(v1, 'cgroup.procs')
  } else if (v2) {
    dir = path.join(v2, CG_NAME)
    read = () => Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(dir, 'cpu.stat'), 'utf8'))[1]) / 1e6
    home = path.join(v2, 'cgroup.procs')
  } else return { why: 'no cpuacct (v1) or unified (v2) cgroup hierarchy' }
  try {
    fs.mkdirSync(dir, { recursive: true })
    for (const p of descendants(pid)) {
      try { fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(p)) } catch { /* exited, or a kernel thread */ }
    }
    read()
  } catch (e) {
    return { why: `cannot set up cgroup ${dir}: ${e.message}` }
  }
  return {
    dir,
    read,
    /** Moves whatever is left back to the root group and removes ours. */
    release() {
      try {
        for (const p of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try { fs.writeFileSync(home, p) } catch { /* gone */ }
        }
        fs.rmdirSync(dir)
      } catch { /* best effort */ }
    },
  }
}

class DockerPeer {
  constructor() {
    this.env = null
    this.startedByUs = false
    this.cpu = null
    this.cpuWhy = null
  }

  /** null when usable, else why not. */
  async start() {
    if (!c.which('docker')) return 'docker CLI not installed (apt-get install docker.io)'
    let host = process.env.STRATA_BENCH_DOCKER_HOST
    if (!host) {
      if (process.getuid() !== 0) return 'needs root to start a private dockerd'
      const script = path.join(c.REPO, 'scripts/peers/dockerd.sh')
      const st = spawnSync('bash', [script, 'status'], { encoding: 'utf8' })
      const r = spawnSync('bash', [script, 'start'], { encoding: 'utf8' })
      if (r.status !== 0) return `scripts/peers/dockerd.sh start failed: ${(r.stderr || '').trim().split('\n').slice(-6).join(' | ')}`
      this.startedByUs = st.status !== 0
      host = (r.stdout.match(/DOCKER_HOST=(\S+)/) || [])[1]
      if (!host) return `scripts/peers/dockerd.sh start printed no DOCKER_HOST: ${r.stdout}`
    }
    this.host = host
    this.env = { ...process.env, DOCKER_HOST: host }
    const v = await this.docker(['version', '--format', '{{.Server.Version}} {{.Client.Version}}'], { allowFail: true })
    if (v.code !== 0) return `docker daemon at ${host} does not answer: ${v.stderr.trim()}`
    const [server, client] = v.stdout.trim().split(' ')
    this.driver = (await this.docker(['info', '--format', '{{.Driver}}'])).stdout.trim()
    this.version = server
    this.note = `engine ${server}, client ${client}, ${this.driver}, DOCKER_HOST=${host}`
    if (!process.env.STRATA_BENCH_DOCKER_HOST && fs.existsSync(PIDFILE)) {
      const g = daemonCpuGroup(Number(fs.readFileSync(PIDFILE, 'utf8').trim()))
      if (g.why) this.cpuWhy = g.why
      else this.cpu = g
    } else this.cpuWhy = 'daemon not started by scripts/peers/dockerd.sh: its pid is unknown'
    return null
  }

  docker(args, opts = {}) {
    return c.run('docker', args, { env: this.env, ...opts })
  }

  /** CPU seconds of the daemon side so far (null when unknown). */
  daemonCpu() {
    if (!this.cpu) return null
    try { return this.cpu.read() } catch { return null }
  }

  async stop() {
    if (this.cpu) this.cpu.release()
    if (this.startedByUs) spawnSync('bash', [path.join(c.REPO, 'scripts/peers/dockerd.sh'), 'stop'], { stdio: 'ignore' })
  }
}

module.exports = { DockerPeer }
