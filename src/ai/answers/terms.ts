/**
 * Light English term normalisation for the extractive answerer: lowercase, diacritics folded, a small
 * stop-word list and a Porter-lite suffix stemmer. It only has to map a question and a sentence onto
 * the same terms, so it is deliberately crude: `policies`/`policy` → `polici`, `vaccinated`/
 * `vaccination`/`vaccinate` → `vaccinat`, `weeks` → `week`, `paid` stays `paid`. Irregular forms
 * (`pay`/`paid`, `child`/`children`) and synonyms are not related.
 *
 *   terms('How many weeks of paid leave do new parents get?') // ['week', 'paid', 'leav', 'new', 'parent', 'get']
 */

/** Function words, question words and quantity fillers; none of them says what a question is about. */
export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'a about above after again against all also am an and any are as at be because been before being ' +
    'below between both but by can could did do does doing done down during each either etc few for ' +
    'from further had has have having he her here hers herself him himself his how however if in into ' +
    'is it its itself just may me might more most much must my myself no nor not now of off on once ' +
    'only or other our ours ourselves out over own per same shall she should so some such than that the ' +
    'their theirs them themselves then there these they this those through thus to too under until up ' +
    'upon us very via was we were what whatever when where whether which while who whom whose why will ' +
    'with within without would yet you your yours yourself many kind type according describe described'
  ).split(' '),
);

const TOKEN = /[\p{L}\p{N}]+(?:[.,]\p{N}+)*/gu;
const DIGIT = /\p{N}/u;
const VOWEL = /[aeiouy]/;

/** Tokens of `text`, lowercased and with diacritics folded (numbers keep their decimal point). */
export function tokens(text: string): string[] {
  const folded = text.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
  const out: string[] = [];
  for (const match of folded.matchAll(TOKEN)) {
    const token = match[0];
    // `400,000` and `400000` are one number; a lone letter (initials, the `s` of `it's`) is noise.
    if (DIGIT.test(token)) out.push(token.replace(/,/g, ''));
    else if (token.length > 1) out.push(token);
  }
  return out;
}

/** Porter-lite: plural, -ed/-ing, -ly, -ation, final y → i and final e dropped. */
export function stem(word: string): string {
  if (word.length <= 3 || DIGIT.test(word)) return word;
  let w = word;
  if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('ies')) w = w.slice(0, -2);
  else if (w.endsWith('s') && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1);

  for (const suffix of ['ing', 'ed']) {
    if (w.endsWith(suffix) && w.length - suffix.length >= 3 && VOWEL.test(w.slice(0, -suffix.length))) {
      w = w.slice(0, -suffix.length);
      // stopped → stopp → stop; but keep -ll/-ss/-zz (called, passed).
      if (/([^aeioulsz])\1$/.test(w)) w = w.slice(0, -1);
      break;
    }
  }
  if (w.endsWith('ly') && w.length > 5) w = w.slice(0, -2);
  if (w.endsWith('ation') && w.length > 7) w = w.slice(0, -3);
  if (w.endsWith('y') && w.length > 3 && !VOWEL.test(w.charAt(w.length - 2))) w = `${w.slice(0, -1)}i`;
  if (w.endsWith('e') && w.length > 4) w = w.slice(0, -1);
  return w;
}

/** The content terms of `text` in order: tokens minus stop words, stemmed. */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const token of tokens(text)) {
    if (!STOP_WORDS.has(token)) out.push(stem(token));
  }
  return out;
}
