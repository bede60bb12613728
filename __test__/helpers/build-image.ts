/**
 * The base image of the build tests: busybox with empty /etc/hosts, /etc/hostname and
 * /etc/resolv.conf, as real distribution images have them. Without them BuildKit's runtime
 * makes those mount points in each RUN step's layer and leaves an `etc/` entry behind in it
 * (strata's steps mount them from a stub layer below the image and never do), so a RUN that
 * writes nothing would be a layer under BuildKit and an empty layer under strata.
 */
import { tar } from './tar'
import { buildImage, busyboxEntries, BuiltImage } from './image'

export function buildBaseImage(tags: string[]): BuiltImage {
  return buildImage({
    layers: [tar([...busyboxEntries(), { name: 'etc/hosts', data: '' }, { name: 'etc/hostname', data: '' }, { name: 'etc/resolv.conf', data: '' }])],
    tags,
  })
}
