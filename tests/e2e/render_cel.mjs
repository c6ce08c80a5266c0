// render_cel.mjs - evaluates the CEL rules (x-kubernetes-validations) that
// tests/e2e/crdcheck.py collected from a CRD and an object, with
// @marcbachmann/cel-js (installed by the test under build/, never committed).
//
// stdin: {"checks": [{"id": N, "rule": "...", "self": <value>}, ...]}
// stdout: [{"id": N, "result": true|false|null, "error": "..."}, ...]
// Numbers without a fraction become CEL ints (BigInt), as the API server
// types an integer field; a rule that cel-js cannot evaluate comes back with
// result null and the error, never as a pass.
//
// One rewrite: cel-js 8 refuses has() around a selection on an index
// ("has(self.matches[0].path)", valid CEL that the Gateway API CRDs use).
// On a map, has(e.f) is exactly 'f' in e, and every object here is a map, so
// such a rule is retried as "'path' in self.matches[0]" and comes back with
// rewritten: true.
import {evaluate} from '@marcbachmann/cel-js'
import {readFileSync} from 'node:fs'

function toCel (v) {
  if (Array.isArray(v)) return v.map(toCel)
  if (v !== null && typeof v === 'object') {
    const o = {}
    for (const [k, x] of Object.entries(v)) o[k] = toCel(x)
    return o
  }
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
  return v
}

// has(<operand with [..]>.<field>) -> ('<field>' in <operand>); operands
// here have no parentheses of their own
function rewriteHas (rule) {
  return rule.replace(/has\(([A-Za-z_][\w.]*(?:\[[^\]()]*\][\w.]*)+)\.([A-Za-z_]\w*)\)/g,
    (m, operand, field) => "('" + field + "' in " + operand + ')')
}

const input = JSON.parse(readFileSync(0, 'utf8'))
const out = []
for (const c of input.checks) {
  let rule = c.rule
  let rewritten = false
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const r = evaluate(rule, {self: toCel(c.self)})
      if (typeof r !== 'boolean') {
        out.push({id: c.id, result: null, error: 'rule gave a ' + typeof r + ', not a boolean'})
      } else {
        out.push({id: c.id, result: r, rewritten})
      }
      break
    } catch (e) {
      const msg = String(e && e.message ? e.message : e)
      const again = rewriteHas(rule)
      if (attempt === 0 && msg.includes('has() invalid argument') && again !== rule) {
        rule = again
        rewritten = true
        continue
      }
      out.push({id: c.id, result: null, error: msg.split('\n')[0]})
      break
    }
  }
}
process.stdout.write(JSON.stringify(out))
