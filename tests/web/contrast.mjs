// Prints the WCAG 2 contrast ratio of every colour pair the dashboard's
// app.css uses for text (>= 4.5 needed) and for chart lines against the
// chart's background (>= 3, WCAG 1.4.11); exits 1 when one is short.
//   node tests/web/contrast.mjs
const lum = hex => {
  const c = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16) / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
};
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const text = [
  ['body text', '#1b1f24', '#ffffff'], ['muted text', '#57606a', '#ffffff'],
  ['text on panel', '#1b1f24', '#f6f8fa'], ['muted on panel', '#57606a', '#f6f8fa'],
  ['link/focus', '#0b5cad', '#ffffff'],
  ['ok', '#0b4f96', '#e7f0fb'], ['at-risk', '#6b3f00', '#fff1c7'], ['failed', '#9b1c1c', '#fde7e7'],
  ['succeeded', '#17602b', '#e5f3e8'], ['waiting', '#5b2f91', '#f1eafa'], ['paused', '#3d4651', '#eceff3'],
  ['idle', '#3d4651', '#eceff3'], ['button', '#ffffff', '#0b5cad'], ['danger button', '#ffffff', '#a4161a'],
  ['error text', '#9b1c1c', '#ffffff'], ['unhealthy', '#9b1c1c', '#ffffff'], ['healthy', '#17602b', '#ffffff'],
  ['notice', '#6b3f00', '#fff1c7'], ['chart label', '#57606a', '#ffffff'],
];
const lines = [
  ['canary line', '#c2410c', '#ffffff'], ['stable line', '#1f5fbf', '#ffffff'],
  ['threshold line', '#6e7781', '#ffffff'], ['p95 canary', '#8f2d56', '#ffffff'],
  ['p50 canary', '#b45309', '#ffffff'], ['weight line', '#0b5cad', '#ffffff'],
  ['focus ring', '#0b5cad', '#ffffff'], ['at-risk border', '#b26b00', '#ffffff'],
];
let bad = 0;
for (const [set, min] of [[text, 4.5], [lines, 3]]) for (const [n, fg, bg] of set) {
  const r = ratio(fg, bg);
  if (r < min) bad++;
  console.log(`${r >= min ? 'ok  ' : 'LOW '} ${r.toFixed(2).padStart(5)}:1  ${n} ${fg} on ${bg} (needs ${min})`);
}
process.exit(bad ? 1 : 0);
