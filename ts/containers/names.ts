/**
 * Container names as Docker makes and checks them: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, stored with a
 * leading `/`, unique in the store; generated `adjective_surname` names when none is given
 * (moby pkg/namesgenerator; a subset of its lists).
 */
import { crypto } from '../internal/lazy'
import { StrataError } from '../errors'

const VALID = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/

const LEFT = ['admiring', 'adoring', 'affectionate', 'agitated', 'amazing', 'angry', 'awesome', 'beautiful', 'blissful',
  'bold', 'boring', 'brave', 'busy', 'charming', 'clever', 'compassionate', 'competent', 'condescending', 'confident',
  'cool', 'cranky', 'crazy', 'dazzling', 'determined', 'distracted', 'dreamy', 'eager', 'ecstatic', 'elastic',
  'elated', 'elegant', 'eloquent', 'epic', 'exciting', 'fervent', 'festive', 'flamboyant', 'focused', 'friendly',
  'frosty', 'funny', 'gallant', 'gifted', 'goofy', 'gracious', 'great', 'happy', 'hardcore', 'heuristic', 'hopeful',
  'hungry', 'infallible', 'inspiring', 'intelligent', 'interesting', 'jolly', 'jovial', 'keen', 'kind', 'laughing',
  'loving', 'lucid', 'magical', 'modest', 'musing', 'mystifying', 'naughty', 'nervous', 'nice', 'nifty', 'nostalgic',
  'objective', 'optimistic', 'peaceful', 'pedantic', 'pensive', 'practical', 'priceless', 'quirky', 'quizzical',
  'recursing', 'relaxed', 'reverent', 'romantic', 'sad', 'serene', 'sharp', 'silly', 'sleepy', 'stoic', 'strange',
  'stupefied', 'suspicious', 'sweet', 'tender', 'thirsty', 'trusting', 'unruffled', 'upbeat', 'vibrant', 'vigilant',
  'vigorous', 'wizardly', 'wonderful', 'xenodochial', 'youthful', 'zealous', 'zen']

const RIGHT = ['agnesi', 'albattani', 'allen', 'almeida', 'archimedes', 'ardinghelli', 'aryabhata', 'austin', 'babbage',
  'banach', 'bardeen', 'bartik', 'bassi', 'bell', 'benz', 'bhabha', 'bhaskara', 'black', 'blackwell', 'bohr', 'booth',
  'borg', 'bose', 'boyd', 'brahmagupta', 'brattain', 'brown', 'carson', 'cerf', 'chandrasekhar', 'chaplygin',
  'chatelet', 'chatterjee', 'cohen', 'curie', 'darwin', 'davinci', 'dijkstra', 'dirac', 'driscoll', 'dubinsky',
  'easley', 'edison', 'einstein', 'elion', 'engelbart', 'euclid', 'euler', 'faraday', 'fermat', 'fermi', 'feynman',
  'franklin', 'gagarin', 'galileo', 'gauss', 'germain', 'goldberg', 'goldstine', 'goodall', 'hamilton', 'hawking',
  'heisenberg', 'hermann', 'hodgkin', 'hofstadter', 'hopper', 'hypatia', 'jackson', 'jang', 'jemison', 'jennings',
  'johnson', 'joliot', 'kalam', 'kapitsa', 'keller', 'kepler', 'khorana', 'kilby', 'knuth', 'kowalevski', 'lalande',
  'lamarr', 'lamport', 'leakey', 'leavitt', 'lehmann', 'liskov', 'lovelace', 'lumiere', 'mahavira', 'margulis',
  'matsumoto', 'maxwell', 'mayer', 'mccarthy', 'mcclintock', 'meitner', 'mendel', 'minsky', 'mirzakhani', 'montalcini',
  'moore', 'morse', 'moser', 'napier', 'nash', 'neumann', 'newton', 'nobel', 'noether', 'noyce', 'pare', 'pascal',
  'pasteur', 'payne', 'perlman', 'pike', 'poincare', 'ptolemy', 'raman', 'ramanujan', 'ride', 'ritchie', 'robinson',
  'roentgen', 'rosalind', 'saha', 'sammet', 'shamir', 'shannon', 'shaw', 'shockley', 'sinoussi', 'snyder', 'spence',
  'stonebraker', 'sutherland', 'swanson', 'swartz', 'tesla', 'thompson', 'torvalds', 'turing', 'varahamihira',
  'visvesvaraya', 'volhard', 'wescoff', 'wiles', 'williams', 'wilson', 'wing', 'wozniak', 'wright', 'wu', 'yalow',
  'yonath', 'zhukovsky']

/** A random `adjective_surname`; after collisions Docker appends a digit (`retry > 0`). */
export function randomName(retry = 0): string {
  let name = `${LEFT[crypto.randomInt(LEFT.length)]}_${RIGHT[crypto.randomInt(RIGHT.length)]}`
  if (name === 'boring_wozniak') return randomName(retry) // Steve Wozniak is not boring (moby's rule)
  if (retry > 0) name += String(crypto.randomInt(10))
  return name
}

/** Checks a user-given name; returns it with the leading `/`. */
export function canonicalName(name: string): string {
  if (!VALID.test(name)) {
    throw new StrataError('InvalidArgument', `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`)
  }
  return name.startsWith('/') ? name : `/${name}`
}
