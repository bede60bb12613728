/** `--env-file` of `run`, `create` and `exec`. */
import { fsp as fs } from '../lazy'
import { StrataError } from '../errors'

/** Docker's `--env-file`: `K=V` lines (a bare `K` takes our value), `#` comments and blanks skipped. */
export async function readEnvFiles(files: string[]): Promise<string[]> {
  const out: string[] = []
  for (const f of files) {
    let text: string
    try {
      text = await fs.readFile(f, 'utf8')
    } catch (e) {
      throw new StrataError('InvalidArgument', `open ${f}: no such file or directory`, { cause: e })
    }
    for (const raw of text.split('\n')) {
      const line = raw.replace(/^\s+/, '')
      if (line === '' || line.startsWith('#')) continue
      out.push(line.replace(/\r$/, ''))
    }
  }
  return out
}
