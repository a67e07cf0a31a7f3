// The npm registry reachable from our machines serves only the platform binaries of this machine
// kind (linux x64): `npm install` cannot record the other platforms' optional binaries (darwin,
// win32, arm...) in package-lock.json, and `npm ci` then refuses the lock as out of sync.
// This adds the missing optional entries (version, os/cpu from the package name, no tarball), so
// that `npm ci` accepts the lock and skips them, as it would on any platform they do not fit.
// Run after `npm install` changed the lock: `npm run lock:complete`.
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const packages = lock.packages;

const osOf = (name) =>
  ['darwin', 'win32', 'freebsd', 'android', 'openharmony', 'linux', 'sunos', 'aix', 'netbsd', 'openbsd'].find((os) =>
    name.includes(os),
  );
const cpuOf = (name) =>
  [
    ['arm64', 'arm64'], ['aarch64', 'arm64'], ['x64', 'x64'], ['ia32', 'ia32'], ['armv7', 'arm'], ['arm-', 'arm'],
    ['arm', 'arm'], ['ppc64', 'ppc64'], ['s390x', 's390x'], ['riscv64', 'riscv64'], ['loong64', 'loong64'],
  ].find(([marker]) => name.includes(marker))?.[1];
const libcOf = (name) => (name.includes('musl') ? 'musl' : name.includes('gnu') ? 'glibc' : undefined);

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    // Resolution as node does it: nested under the parent first, then hoisted at the root.
    const wanted = String(version).replace(/^[\^~=]/, '');
    // Where node would find it from the parent: its own node_modules, then each enclosing one.
    const candidates = [];
    for (let dir = path; ; ) {
      candidates.push(`${dir ? `${dir}/` : ''}node_modules/${name}`);
      if (!dir) break;
      const cut = dir.lastIndexOf('/node_modules/');
      dir = cut === -1 ? '' : dir.slice(0, cut);
    }
    const found = candidates.find((candidate) => packages[candidate]);
    if (found && packages[found].version === wanted) continue;
    const os = osOf(name);
    const cpu = cpuOf(name);
    if (!os && !cpu) continue; // not a platform binary: leave it to npm
    // The root if free, else next to the parent.
    const hoisted = `node_modules/${name}`;
    const target = !packages[hoisted] ? hoisted : `${path}/node_modules/${name}`;
    if (packages[target]) continue;
    const libc = os === 'linux' ? libcOf(name) : undefined;
    packages[target] = {
      version: wanted,
      ...(cpu ? { cpu: [cpu] } : {}),
      ...(entry.dev ? { dev: true } : {}),
      ...(libc ? { libc: [libc] } : {}),
      optional: true,
      ...(os ? { os: [os] } : {}),
    };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))));
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} optional platform entries`);
