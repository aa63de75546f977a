// TeX -> SVG at build time with MathJax (mathjax-full, pinned in package.json), so a page's
// math reads with JavaScript off, in reader mode and in feeds.
//
//   node mathjax.mjs < items.json > rendered.json     items: [{"tex": "...", "display": bool}]
//   node mathjax.mjs --version                         one line for the cache key
//
// Each answer is one <mjx-container> holding the SVG (glyphs drawn as paths: no font to ship;
// fontCache "none" so no element ids repeat when an expression appears twice) and, for screen
// readers and feeds, MathJax's assistive MathML copy. An expression MathJax cannot read is
// answered {"error": "..."} in its place; the Python side reports it naming the post.
import {readFileSync} from 'node:fs';
import {createRequire} from 'node:module';

// NODE_PATH (set by render/prerender.py) names the node_modules folder holding mathjax-full.
const base = process.env.NODE_PATH ? `${process.env.NODE_PATH.split(':')[0]}/` : import.meta.url;
const require = createRequire(base.startsWith('file:') ? base : `file://${base}`);
const mj = (path) => require(`mathjax-full/js/${path}`);

if (process.argv.includes('--version')) {
  const pkg = JSON.parse(readFileSync(require.resolve('mathjax-full/package.json'), 'utf8'));
  process.stdout.write(`mathjax.mjs/1 mathjax-full@${pkg.version} svg\n`);
  process.exit(0);
}

const {mathjax} = mj('mathjax.js');
const {TeX} = mj('input/tex.js');
const {SVG} = mj('output/svg.js');
const {liteAdaptor} = mj('adaptors/liteAdaptor.js');
const {RegisterHTMLHandler} = mj('handlers/html.js');
const {AssistiveMmlHandler} = mj('a11y/assistive-mml.js');
// The TeX packages the articles use (ams: \tag, \lVert; newcommand: \newcommand).
mj('input/tex/base/BaseConfiguration.js');
mj('input/tex/ams/AmsConfiguration.js');
mj('input/tex/newcommand/NewcommandConfiguration.js');

const adaptor = liteAdaptor();
AssistiveMmlHandler(RegisterHTMLHandler(adaptor));
const doc = mathjax.document('', {
  InputJax: new TeX({packages: ['base', 'ams', 'newcommand'],
                     formatError: (jax, err) => { throw err; }}),
  OutputJax: new SVG({fontCache: 'none'}),
});

const items = JSON.parse(readFileSync(0, 'utf8'));
const out = items.map(({tex, display}) => {
  try {
    // em/ex: the site's 17 px body font; containerWidth: the text column, for \tag placement.
    const node = doc.convert(tex, {display: Boolean(display), em: 17, ex: 8, containerWidth: 680});
    return {html: adaptor.outerHTML(node)};
  } catch (err) {
    return {error: String(err.message || err).split('\n')[0]};
  }
});
process.stdout.write(JSON.stringify(out));
