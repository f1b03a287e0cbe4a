// Every style of the widget, applied inside its shadow root only. `:host { all: initial }` (and
// `!important`, which from inside a shadow root beats the page's `!important`) cuts the
// inheritance from the page; sizes are in px, never rem (the page owns the root font size).
export const STYLES = `
:host { all: initial !important; }
.root {
  --lq-accent: #1c64f2;
  --lq-on-accent: #fff;
  all: initial;
  position: fixed; bottom: 20px; right: 20px; z-index: 2147483000;
  display: flex; flex-direction: column; align-items: flex-end; gap: 12px;
  font: 400 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1f2328; letter-spacing: normal; text-align: left; text-transform: none;
  -webkit-font-smoothing: antialiased;
}
.root[data-position="left"] { right: auto; left: 20px; align-items: flex-start; }
:where(.root *) { box-sizing: border-box; font: inherit; color: inherit; letter-spacing: inherit;
  text-transform: none; margin: 0; padding: 0; }
:where(button) { cursor: pointer; border: 0; background: none; }
button:focus-visible, textarea:focus-visible { outline: 2px solid var(--lq-accent); outline-offset: 2px; }
.bubble { width: 56px; height: 56px; border-radius: 50%; background: var(--lq-accent);
  color: var(--lq-on-accent); display: grid; place-items: center;
  box-shadow: 0 4px 14px rgba(0,0,0,.25); }
.bubble svg { width: 26px; height: 26px; fill: currentColor; }
.panel { width: min(380px, calc(100vw - 40px)); height: min(560px, calc(100vh - 110px));
  background: #fff; border-radius: 14px; box-shadow: 0 12px 40px rgba(0,0,0,.22);
  display: flex; flex-direction: column; overflow: hidden; border: 1px solid #e3e6ea; }
.panel[hidden] { display: none; }
.head { background: var(--lq-accent); color: var(--lq-on-accent); padding: 12px 12px 12px 16px;
  display: flex; align-items: center; gap: 8px; }
.head h2 { flex: 1; font-size: 16px; font-weight: 600; line-height: 1.3; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.head button { color: inherit; width: 30px; height: 30px; border-radius: 6px; font-size: 18px;
  line-height: 30px; text-align: center; }
.head button:hover { background: rgba(255,255,255,.18); }
.log { flex: 1; overflow-y: auto; padding: 14px; display: flex; flex-direction: column;
  gap: 10px; background: #f7f8fa; }
.msg { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap;
  overflow-wrap: anywhere; }
.msg.assistant, .msg.welcome { align-self: flex-start; background: #fff; border: 1px solid #e3e6ea; }
.msg.user { align-self: flex-end; background: var(--lq-accent); color: var(--lq-on-accent); }
.msg.note { align-self: center; background: none; color: #59636e; font-size: 12px; }
.msg[data-status="streaming"] .text:empty::after { content: "\\2026"; color: #59636e; }
.msg[data-status="failed"], .msg[data-status="interrupted"], .msg[data-status="cancelled"] {
  border-color: #f0b4b4; }
.msg .status { display: block; font-size: 12px; color: #b42318; margin-top: 4px; }
.cites { list-style: none; margin-top: 8px; padding-top: 6px; border-top: 1px solid #e3e6ea;
  font-size: 12px; color: #59636e; white-space: normal; }
.cites li { margin-top: 2px; }
.alert { margin: 0 12px 8px; padding: 8px 10px; border-radius: 8px; background: #fdecec;
  color: #8a1c1c; font-size: 13px; }
.alert[hidden] { display: none; }
.form { display: flex; gap: 8px; padding: 10px 12px 12px; border-top: 1px solid #e3e6ea;
  background: #fff; align-items: flex-end; }
textarea { flex: 1; resize: none; min-height: 38px; max-height: 120px; padding: 8px 10px;
  border: 1px solid #cfd4da; border-radius: 8px; background: #fff; color: #1f2328; }
.send { height: 38px; padding: 0 14px; border-radius: 8px; background: var(--lq-accent);
  color: var(--lq-on-accent); font-weight: 600; }
.send:disabled { opacity: .5; cursor: default; }
.send[hidden] { display: none; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
`;
