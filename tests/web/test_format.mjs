// Unit test of web/app.js' pure part (window.canarydFormat): UK times on
// both sides of the clock changes, en-GB numbers and money, the phase
// states, the thresholds drawn on the charts. app.js is run as the browser
// runs it, in a context with no document (it then defines only the pure
// part). Prints "N passed, N failed"; exits 1 on a failure.
//   node tests/web/test_format.mjs
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

const src = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web', 'app.js'), 'utf8');
const ctx = vm.createContext({ Intl, Date, Math, Number, String, Set, Map, Object, Array, JSON });
vm.runInContext(src, ctx, { filename: 'web/app.js' });
const { makeFormat, phaseState, thresholds } = ctx.canarydFormat;

let passed = 0, failed = 0;
function eq(name, got, want) {
  if (JSON.stringify(got) === JSON.stringify(want)) { passed++; return; }
  failed++;
  console.log(`FAIL ${name}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const uk = makeFormat('Europe/London', 'en-GB');
const t = (y, mo, d, h, mi, s) => Date.UTC(y, mo - 1, d, h, mi, s);
// last Sunday of March 2026: 01:00 UTC, the clocks go 01:00 GMT -> 02:00 BST
eq('March, second before', uk.formatTime(t(2026, 3, 29, 0, 59, 59)), '29/03/2026, 00:59:59 GMT');
eq('March, at the change', uk.formatTime(t(2026, 3, 29, 1, 0, 0)), '29/03/2026, 02:00:00 BST');
// last Sunday of October 2026: 01:00 UTC, 02:00 BST -> 01:00 GMT
eq('October, second before', uk.formatTime(t(2026, 10, 25, 0, 59, 59)), '25/10/2026, 01:59:59 BST');
eq('October, at the change', uk.formatTime(t(2026, 10, 25, 1, 0, 0)), '25/10/2026, 01:00:00 GMT');
eq('clock', uk.formatClock(t(2026, 7, 1, 13, 3, 7)), '14:03:07 BST');
eq('winter clock', uk.formatClock(t(2026, 11, 24, 21, 40, 12)), '21:40:12 GMT');
eq('date order', uk.formatTime(t(2026, 11, 24, 9, 5, 0)), '24/11/2026, 09:05:00 GMT');
eq('offset BST', uk.offsetMinutes(t(2026, 7, 1, 12, 0, 0)), 60);
// ICU names Jersey's summer time "GMT+1": the label comes from the offset
eq('Jersey summer', makeFormat('Europe/Jersey', 'en-GB').zoneLabel(t(2026, 7, 1, 12, 0, 0)), 'BST');
eq('Jersey winter', makeFormat('Europe/Jersey', 'en-GB').zoneLabel(t(2026, 1, 1, 12, 0, 0)), 'GMT');
eq('UTC zone', makeFormat('UTC', 'en-GB').formatClock(t(2026, 7, 1, 12, 0, 0)), '12:00:00 UTC');
eq('another zone keeps its name', makeFormat('Europe/Berlin', 'en-GB').zoneLabel(t(2026, 1, 1, 12, 0, 0)), 'CET');
eq('number', uk.formatNumber(1000, 2), '1,000.00');
eq('number, no digits', uk.formatNumber(1234567, 0), '1,234,567');
eq('number, none', uk.formatNumber(null, 2), '–');
eq('money', uk.formatMoney(1000), '£1,000.00');
eq('money, pennies', uk.formatMoney(0.0349), '£0.0349');
eq('money, zero', uk.formatMoney(0), '£0.00');
eq('money, euro', uk.formatMoney(12.5, 'EUR'), '€12.50');
eq('German numbers', makeFormat('Europe/Berlin', 'de-DE').formatNumber(1000, 2), '1.000,00');
let threw = false;
try { makeFormat('Mars/Olympus', 'en-GB'); } catch (e) { threw = e.name === 'RangeError'; }
eq('unknown zone refused', threw, true);

eq('progressing', phaseState({ phase: 'Progressing', failedChecks: 0, canaryRevision: 'v2' }), 'ok');
eq('at risk', phaseState({ phase: 'Progressing', failedChecks: 3, canaryRevision: 'v2' }), 'at-risk');
eq('paused with failures', phaseState({ phase: 'Paused', failedChecks: 3 }), 'paused');
eq('waiting', phaseState({ phase: 'WaitingPromotion', failedChecks: 0 }), 'waiting');
eq('failed', phaseState({ phase: 'Failed', failedChecks: 3 }), 'failed');
eq('succeeded', phaseState({ phase: 'Succeeded', failedChecks: 0 }), 'succeeded');
eq('no rollout', phaseState({ phase: 'Initialized', failedChecks: 0, canaryRevision: null }), 'idle');

const th = thresholds([{ name: 'request-success-rate', min: 99 }, { name: 'request-duration', max: 500 },
  { name: 'error-rate', thresholdRange: { max: 2.5 } }, { name: 'custom', min: 1 }]);
eq('error thresholds', th.errors.map(x => x.v), [1, 2.5]);
eq('latency threshold', th.latency.map(x => x.label), ['max 500 ms']);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
