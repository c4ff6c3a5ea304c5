/**
 * The metric names a PromQL expression reads, for checking dashboards against what the monitor
 * exports. No PromQL parser is among the project's dependencies, so this is a small tokenizer with
 * PromQL's lexical rules (strings, comments, durations, Grafana `$variables`) and the grammar's places
 * where a bare identifier is *not* a metric: function and aggregation calls, label lists after
 * `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`, label matchers in `{}`, ranges in `[]`,
 * keywords. It is strict where it matters: unbalanced brackets and unknown functions are errors, so a
 * typo cannot hide a name.
 */

const FUNCTIONS = new Set(
  (
    'abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max ' +
    'clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp ' +
    'floor histogram_avg histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar ' +
    'histogram_sum holt_winters double_exponential_smoothing hour idelta increase info irate label_join ' +
    'label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi ' +
    'predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort ' +
    'sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh ' +
    'time timestamp vector year'
  ).split(' '),
);
const AGGREGATIONS = new Set(
  'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio'.split(
    ' ',
  ),
);
/** Keywords followed by a parenthesised list of label names. */
const LABEL_LIST_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['bool', 'offset', 'and', 'or', 'unless', 'atan2', 'inf', 'nan', 'start', 'end']);

interface Token {
  kind: 'ident' | 'string' | 'punct' | 'other';
  text: string;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re =
    /\s+|#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\$\{[^}]*\}|\$\w+|[a-zA-Z_:][a-zA-Z0-9_:]*|\d[\w.]*|[(){}[\],]|=~|!~|!=|==|<=|>=|[-+*/%^=<>@]/y;
  let at = 0;
  while (at < expr.length) {
    re.lastIndex = at;
    const m = re.exec(expr);
    if (!m) throw new Error(`PromQL: cannot read ${JSON.stringify(expr.slice(at, at + 20))} in ${expr}`);
    at = re.lastIndex;
    const text = m[0];
    if (/^\s|^#/.test(text)) continue;
    if (/^[a-zA-Z_:]/.test(text)) tokens.push({ kind: 'ident', text });
    else if (/^["'`]/.test(text)) tokens.push({ kind: 'string', text });
    else if (/^[(){}[\],]$/.test(text)) tokens.push({ kind: 'punct', text });
    else tokens.push({ kind: 'other', text });
  }
  return tokens;
}

const CLOSING: Record<string, string> = { '(': ')', '{': '}', '[': ']' };

/** Index just past the bracket closing the one at `open`. */
function skipGroup(tokens: readonly Token[], open: number, expr: string): number {
  const stack: string[] = [];
  for (let i = open; i < tokens.length; i++) {
    const t = tokens[i]!.text;
    if (tokens[i]!.kind !== 'punct') continue;
    if (CLOSING[t]) stack.push(CLOSING[t]!);
    else if (t !== ',') {
      if (stack.pop() !== t) throw new Error(`PromQL: unbalanced ${t} in ${expr}`);
      if (stack.length === 0) return i + 1;
    }
  }
  throw new Error(`PromQL: unclosed ${tokens[open]!.text} in ${expr}`);
}

/** `{__name__="x"}` names a metric too. */
function namesInMatchers(tokens: readonly Token[], from: number, to: number): string[] {
  const names: string[] = [];
  for (let i = from; i + 2 < to; i++)
    if (tokens[i]!.text === '__name__' && tokens[i + 1]!.text === '=' && tokens[i + 2]!.kind === 'string')
      names.push(tokens[i + 2]!.text.slice(1, -1));
  return names;
}

/** The metric names `expr` reads, in order of appearance. */
export function metricNames(expr: string): string[] {
  const tokens = tokenize(expr);
  const names: string[] = [];
  let depth = 0;
  for (let i = 0; i < tokens.length; ) {
    const { kind, text } = tokens[i]!;
    const next = tokens[i + 1]?.text;
    if (kind === 'punct' && (text === '{' || text === '[')) {
      const end = skipGroup(tokens, i, expr);
      if (text === '{') names.push(...namesInMatchers(tokens, i, end));
      i = end;
      continue;
    }
    if (kind === 'punct') {
      depth += text === '(' ? 1 : text === ')' ? -1 : 0;
      if (depth < 0) throw new Error(`PromQL: unbalanced ) in ${expr}`);
      i++;
      continue;
    }
    if (kind !== 'ident') {
      i++;
      continue;
    }
    if (LABEL_LIST_KEYWORDS.has(text)) {
      i = next === '(' ? skipGroup(tokens, i + 1, expr) : i + 1;
      continue;
    }
    if (next === '(' && !FUNCTIONS.has(text) && !AGGREGATIONS.has(text))
      throw new Error(`PromQL: unknown function ${text} in ${expr}`);
    if (!FUNCTIONS.has(text) && !AGGREGATIONS.has(text) && !KEYWORDS.has(text)) names.push(text);
    else if (AGGREGATIONS.has(text) && next !== '(' && !LABEL_LIST_KEYWORDS.has(next ?? '')) names.push(text); // a metric that happens to be called like an aggregation
    i++;
  }
  if (depth !== 0) throw new Error(`PromQL: unclosed ( in ${expr}`);
  return names;
}
