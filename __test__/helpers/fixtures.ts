/** The rich multi-layer test image used across the image-store tests. */
import { tar, TarEntry } from './tar'
import { busyboxEntries, buildImage, BuiltImage } from './image'

export const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex') // cap_net_bind_service, effective
export const LONG_PAX = `deep/${'p'.repeat(120)}/${'x'.repeat(60)}.txt`
export const LONG_GNU = `deep/${'g'.repeat(130)}.txt`
export const NON_UTF8 = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]) // "caf\xe9.txt"

export function baseLayerEntries(): TarEntry[] {
  return [
    ...busyboxEntries(),
    { name: 'usr/', type: 'dir' }, { name: 'usr/bin/', type: 'dir' }, { name: 'usr/share/', type: 'dir' }, { name: 'usr/share/doc/', type: 'dir' },
    { name: 'usr/share/doc/a.txt', data: 'to be whited out three layers up\n' },
    { name: 'usr/share/doc/b.txt', data: 'stays\n' },
    { name: 'usr/bin/su', data: 'setuid binary\n', mode: 0o4755 },
    { name: 'usr/bin/hl', type: 'hardlink', linkname: 'usr/bin/su' },
    { name: 'usr/bin/vi', type: 'symlink', linkname: '../../bin/busybox' },
    { name: 'etc/localtime', type: 'symlink', linkname: '/usr/share/zoneinfo/UTC' },
    { name: 'srv/', type: 'dir', mode: 0o2775, gid: 50 },
    { name: 'srv/data.txt', data: 'gone later\n' },
    { name: 'opt/', type: 'dir' }, { name: 'opt/app/', type: 'dir' },
    { name: 'opt/app/old.txt', data: 'hidden by an opaque dir later\n' },
    { name: 'run/', type: 'dir' }, { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    { name: 'dev/null2', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/loop9', type: 'block', devmajor: 7, devminor: 9, mode: 0o660 },
    { name: 'home/', type: 'dir' }, { name: 'home/user/', type: 'dir', uid: 1000, gid: 1000 },
    { name: 'home/user/notes.txt', data: 'owned by 1000\n', uid: 1000, gid: 1000, mode: 0o640, mtime: 1234567890 },
    { name: 'usr/bin/ping', data: 'caps\n', mode: 0o755, pax: { 'SCHILY.xattr.security.capability': CAP, 'SCHILY.xattr.user.note': 'kept', 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.overlay.redirect': '/x' } },
    { name: 'deep/', type: 'dir' },
    { name: LONG_PAX, data: 'long pax name\n' },
    { name: LONG_GNU, data: 'long gnu name\n', gnuLongName: true },
    { name: NON_UTF8, data: 'latin1 name\n' },
  ]
}

export function layer1Entries(): TarEntry[] {
  return [
    { name: 'data/', type: 'dir' },
    { name: 'data/one.txt', data: 'layer one\n' },
    { name: 'etc/', type: 'dir' },
    { name: 'etc/motd', data: 'hello from layer 1\n' },
  ]
}

export function layer3Entries(): TarEntry[] {
  return [
    { name: 'usr/', type: 'dir' }, { name: 'usr/share/', type: 'dir' }, { name: 'usr/share/doc/', type: 'dir' },
    { name: 'usr/share/doc/.wh.a.txt', data: '' },
    { name: '.wh.srv', data: '' },
    { name: 'opt/', type: 'dir' }, { name: 'opt/app/', type: 'dir' },
    { name: 'opt/app/.wh..wh..opq', data: '' },
    { name: 'opt/app/fresh.txt', data: 'only this is visible in opt/app\n' },
  ]
}

/** Four layers: base (busybox + every entry type), gzip layer, empty zstd layer, zstd layer with whiteouts. */
export function richImage(tags = ['rich:latest']): BuiltImage {
  return buildImage({
    layers: [tar(baseLayerEntries()), tar(layer1Entries()), tar([]), tar(layer3Entries())],
    compression: ['none', 'gzip', 'zstd', 'zstd'],
    tags,
    createdBy: ['/bin/sh -c #(nop) ADD file:base in / ', '/bin/sh -c echo layer1', '/bin/sh -c true', '/bin/sh -c rm -rf /srv /usr/share/doc/a.txt'],
  })
}

/** A small busybox image. */
export function busyboxImage(tags = ['busybox:latest']): BuiltImage {
  return buildImage({ layers: [tar(busyboxEntries())], tags })
}
