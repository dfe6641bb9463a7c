// Runs the generated useSocket hook in node, for tests/integration/codegen.test.mjs: the
// generated TypeScript transpiled with the pinned compiler, 'react' replaced by the few hooks
// it uses (below), 'socket.io-client' the real one. Not React: one component instance, effects
// run right after each render, state updates re-render on the next microtask. Enough to drive
// the hook through connects, reconnects and unmount against a real walcast. Node ESM.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ts = createRequire(import.meta.url)(join(HERE, 'node_modules', 'typescript'));

// ---- the hooks ---------------------------------------------------------------------------

let rendering = null;  // the instance whose hook runs now

function slot(create) {
  const inst = rendering;
  if (!inst) throw new Error('hook called outside render');
  const i = inst.index++;
  if (inst.slots.length <= i) inst.slots.push(create());
  return inst.slots[i];
}

const sameDeps = (a, b) => a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

export function useRef(initial) {
  return slot(() => ({ current: initial }));
}

export function useState(init) {
  const inst = rendering;
  const s = slot(() => ({ value: typeof init === 'function' ? init() : init }));
  s.set ??= (next) => {
    const value = typeof next === 'function' ? next(s.value) : next;
    if (Object.is(value, s.value)) return;
    s.value = value;
    inst.schedule();
  };
  return [s.value, s.set];
}

export function useCallback(fn, deps) {
  const s = slot(() => ({ fn, deps }));
  if (!sameDeps(s.deps, deps)) Object.assign(s, { fn, deps });
  return s.fn;
}

export function useEffect(effect, deps) {
  const inst = rendering;
  const s = slot(() => ({ deps: undefined, cleanup: undefined, ran: false }));
  if (!s.ran || deps === undefined || !sameDeps(s.deps, deps)) {
    s.ran = true;
    s.deps = deps;
    inst.effects.push({ s, effect });
  }
}

// Renders `hook(props)` as a component would; {result, renders, rerender(props), unmount()}.
export function render(hook, props) {
  const inst = {
    slots: [], index: 0, effects: [], result: undefined, renders: 0, props, unmounted: false, queued: false,
    schedule() {
      if (this.queued || this.unmounted) return;
      this.queued = true;
      queueMicrotask(() => {
        this.queued = false;
        if (!this.unmounted) run(this);
      });
    },
  };
  const run = (i) => {
    rendering = i;
    i.index = 0;
    try {
      i.result = hook(i.props);
      i.renders += 1;
    } finally {
      rendering = null;
    }
    const effects = i.effects.splice(0);
    for (const { s } of effects) s.cleanup?.();
    for (const { s, effect } of effects) {
      const cleanup = effect();
      s.cleanup = typeof cleanup === 'function' ? cleanup : undefined;
    }
  };
  run(inst);
  return {
    get result() { return inst.result; },
    get renders() { return inst.renders; },
    rerender(next) {
      inst.props = next;
      run(inst);
    },
    unmount() {
      inst.unmounted = true;
      for (const s of inst.slots) s?.cleanup?.();
    },
  };
}

// ---- loading the generated files -----------------------------------------------------------

// Transpiles socket-events.ts and use-socket.ts of `dir` to .mjs next to them, with 'react'
// pointing here, and imports use-socket.
export async function loadHook(dir) {
  const self = pathToFileURL(fileURLToPath(import.meta.url)).href;
  for (const name of ['socket-events', 'use-socket']) {
    const source = readFileSync(join(dir, `${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      fileName: `${name}.ts`,
    });
    const js = outputText
      .replace(/from '\.\/socket-events'/g, "from './socket-events.mjs'")
      .replace(/from 'react'/g, `from '${self}'`);
    writeFileSync(join(dir, `${name}.mjs`), js);
  }
  return import(pathToFileURL(join(dir, 'use-socket.mjs')).href);
}
