// A line diff of two texts (longest common subsequence): [op, line] with op " ", "-" or "+".
export const MAX_DIFF_LINES = 5000;

export function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  if (x.length > MAX_DIFF_LINES || y.length > MAX_DIFF_LINES) return [["!", `too long to compare here (more than ${MAX_DIFF_LINES} lines)`]];
  // trim the common head and tail, then LCS on what is left
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail), ys = y.slice(head, y.length - tail);
  const n = xs.length, m = ys.length, w = m + 1;
  const L = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    L[i * w + j] = xs[i] === ys[j] ? L[(i + 1) * w + j + 1] + 1 : Math.max(L[(i + 1) * w + j], L[i * w + j + 1]);
  const out = x.slice(0, head).map((l) => [" ", l]);
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (xs[i] === ys[j]) { out.push([" ", xs[i]]); i++; j++; }
    else if (L[(i + 1) * w + j] >= L[i * w + j + 1]) out.push(["-", xs[i++]]);
    else out.push(["+", ys[j++]]);
  }
  while (i < n) out.push(["-", xs[i++]]);
  while (j < m) out.push(["+", ys[j++]]);
  return out.concat(x.slice(x.length - tail).map((l) => [" ", l]));
}
