/* Kettle & Crumb, the SessionMood demo shop.
 *
 * Two halves: a tiny shop (catalogue, cart in localStorage, a checkout whose
 * payment is declined twice), and what a real site would add to act on
 * SessionMood: a mood badge and one intervention per suggested_action, each
 * reporting back whether it helped (POST /v1/sessions/{id}/feedback).
 *
 * Every string that is not ours goes through textContent: never innerHTML.
 */
(function () {
  'use strict';

  // -- the catalogue ------------------------------------------------------------

  const PRODUCTS = [
    { id: 'mug', name: 'Stoneware mug, speckled', price: 18, colour: '#c9a27e', shape: 'mug',
      options: ['Oat', 'Charcoal', 'Sea green'],
      description: 'Thrown by hand in our workshop, 350 ml, glazed inside and out. Keeps a flat white warm for the whole email.',
      facts: ['350 ml', 'Dishwasher safe', 'Each one slightly different'] },
    { id: 'kettle', name: 'Gooseneck pour-over kettle', price: 64, colour: '#3d4b57', shape: 'kettle',
      options: ['Matte black', 'Brushed steel'],
      description: 'A slow, steady pour for even extraction. Stovetop and induction, with a thermometer in the lid.',
      facts: ['1 litre', 'Induction ready', 'Built-in thermometer'] },
    { id: 'beans', name: 'Monday Roast, whole beans', price: 14, colour: '#7a4b2a', shape: 'bag',
      options: ['Whole bean', 'Filter', 'Espresso', 'Cafetière'],
      description: 'Our house blend from Minas Gerais and Sidamo: milk chocolate, stone fruit, a long sweet finish. Roasted every Monday.',
      facts: ['250 g', 'Roasted weekly', 'Direct trade'] },
    { id: 'dripper', name: 'Ceramic V60 dripper', price: 26, colour: '#e7d9c4', shape: 'dripper',
      options: ['Size 01', 'Size 02'],
      description: 'The classic cone with spiral ribs, in a heavy ceramic that holds its heat. Fits most mugs and servers.',
      facts: ['1 to 4 cups', 'Uses V60 papers', 'Made in Portugal'] },
    { id: 'grinder', name: 'Hand grinder, conical burr', price: 89, colour: '#8a8f94', shape: 'grinder',
      options: ['Walnut', 'Ash'],
      description: 'Stainless conical burrs with 40 clicks from Turkish to cold brew. Quiet enough for a sleeping house.',
      facts: ['40 grind settings', 'Holds 30 g', 'Two-year warranty'] },
    { id: 'tea', name: 'Loose-leaf sencha', price: 12, colour: '#7d9a5b', shape: 'tin',
      options: ['50 g tin', '100 g refill'],
      description: 'A bright, grassy first-flush sencha from Shizuoka. For the afternoons when coffee is one too many.',
      facts: ['Steep 70 °C', '1 minute', 'Three infusions'] },
  ];
  const byId = id => PRODUCTS.find(p => p.id === id);
  const euro = n => '€' + n.toFixed(2);

  // -- small DOM helpers (no innerHTML anywhere) ----------------------------------

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of children) e.append(c);
    return e;
  }

  // A flat illustration of a product, drawn rather than downloaded: works offline.
  function illustration(p) {
    const dark = '#2b2622', light = '#fbf7f1';
    const shapes = {
      mug: [svg('rect', { x: 58, y: 62, width: 70, height: 78, rx: 12, fill: p.colour }),
        svg('path', { d: 'M128 80h10a16 16 0 0 1 0 32h-10', fill: 'none', stroke: p.colour, 'stroke-width': 9 }),
        svg('path', { d: 'M80 40c-6 8 6 12 0 20M100 36c-6 8 6 12 0 20', fill: 'none', stroke: dark, 'stroke-width': 3, 'stroke-linecap': 'round', opacity: 0.35 })],
      kettle: [svg('path', { d: 'M62 76h64l10 62H52z', fill: p.colour }),
        svg('path', { d: 'M126 100c20 0 24-30 44-44', fill: 'none', stroke: p.colour, 'stroke-width': 6, 'stroke-linecap': 'round' }),
        svg('path', { d: 'M70 76c0-26 48-26 48 0', fill: 'none', stroke: dark, 'stroke-width': 6 }),
        svg('circle', { cx: 94, cy: 64, r: 5, fill: dark })],
      bag: [svg('path', { d: 'M62 50h66l8 92H54z', fill: p.colour }),
        svg('rect', { x: 70, y: 84, width: 50, height: 34, rx: 4, fill: light }),
        svg('ellipse', { cx: 95, cy: 101, rx: 8, ry: 12, fill: p.colour }),
        svg('path', { d: 'M95 90v22', stroke: light, 'stroke-width': 2 })],
      dripper: [svg('path', { d: 'M52 60h86l-30 50H82z', fill: p.colour, stroke: dark, 'stroke-opacity': 0.15, 'stroke-width': 2 }),
        svg('rect', { x: 70, y: 110, width: 50, height: 8, rx: 4, fill: p.colour }),
        svg('rect', { x: 66, y: 118, width: 58, height: 26, rx: 6, fill: '#3d4b57', opacity: 0.85 })],
      grinder: [svg('rect', { x: 70, y: 70, width: 50, height: 74, rx: 8, fill: p.colour }),
        svg('rect', { x: 74, y: 120, width: 42, height: 20, rx: 4, fill: '#a0704a' }),
        svg('path', { d: 'M95 70V48h40', fill: 'none', stroke: dark, 'stroke-width': 5, 'stroke-linecap': 'round' }),
        svg('circle', { cx: 138, cy: 48, r: 8, fill: '#a0704a' })],
      tin: [svg('rect', { x: 64, y: 58, width: 62, height: 86, rx: 8, fill: p.colour }),
        svg('rect', { x: 60, y: 50, width: 70, height: 16, rx: 5, fill: '#54693d' }),
        svg('path', { d: 'M95 82c-14 10-14 30 0 40 14-10 14-30 0-40z', fill: light, opacity: 0.85 })],
    };
    return svg('svg', { viewBox: '0 0 190 170', role: 'img', 'aria-label': p.name, class: 'art' },
      svg('rect', { width: 190, height: 170, fill: light }),
      svg('ellipse', { cx: 95, cy: 148, rx: 56, ry: 6, fill: dark, opacity: 0.08 }),
      ...shapes[p.shape]);
  }

  // -- the cart (localStorage: survives reloads, shared by the site's tabs) ---------

  const CART = 'kc_cart', DISCOUNT = 'kc_discount';
  const store = {
    get(k, d) { try { return JSON.parse(localStorage.getItem(k)) ?? d; } catch (_) { return d; } },
    set(k, v) { try { localStorage.setItem(k, JSON.stringify(v)); } catch (_) {} },
  };
  const cart = () => store.get(CART, []).filter(l => byId(l.id));
  function addToCart(id, option, qty) {
    const lines = cart();
    const line = lines.find(l => l.id === id && l.option === option);
    if (line) line.qty = Math.min(9, line.qty + qty);
    else lines.push({ id, option, qty });
    store.set(CART, lines);
    renderCartCount();
  }
  function totals() {
    const subtotal = cart().reduce((s, l) => s + byId(l.id).price * l.qty, 0);
    const discount = store.get(DISCOUNT, 0) ? Math.round(subtotal * 10) / 100 : 0;
    const shipping = subtotal === 0 || subtotal - discount >= 40 ? 0 : 4.9;
    return { subtotal, discount, shipping, total: subtotal - discount + shipping };
  }
  function renderCartCount() {
    const n = cart().reduce((s, l) => s + l.qty, 0);
    $$('[data-cart-count]').forEach(e => { e.textContent = String(n); });
  }
  function renderTotals() {
    const t = totals();
    $$('[data-totals]').forEach(dl => {
      dl.replaceChildren();
      const row = (k, v, cls) => dl.append(el('div', { class: cls }, el('dt', { text: k }), el('dd', { text: v })));
      row('Subtotal', euro(t.subtotal));
      if (t.discount) row('Welcome back, 10% off', '−' + euro(t.discount), 'discount');
      row('Shipping', t.shipping ? euro(t.shipping) : 'Free');
      row('Total', euro(t.total), 'grand');
    });
    $$('[data-pay-total]').forEach(e => { e.textContent = euro(t.total); });
  }

  // -- pages ------------------------------------------------------------------------

  function productCard(p, compact) {
    return el('li', { class: compact ? 'card compact' : 'card' },
      el('a', { href: 'product.html?id=' + encodeURIComponent(p.id), class: 'card-link' },
        illustration(p),
        el('span', { class: 'card-body' },
          el('span', { class: 'card-name', text: p.name }),
          el('span', { class: 'card-price', text: euro(p.price) }))));
  }

  const pages = {
    home() {
      $('[data-product-grid]').replaceChildren(...PRODUCTS.map(p => productCard(p)));
    },

    product() {
      const p = byId(new URLSearchParams(location.search).get('id')) || PRODUCTS[0];
      document.title = p.name + ' · Kettle & Crumb';
      $('[data-product-crumb]').textContent = p.name;
      $('[data-product-name]').textContent = p.name;
      $('[data-product-price]').textContent = euro(p.price);
      $('[data-product-description]').textContent = p.description;
      $('[data-product-figure]').replaceChildren(illustration(p));
      $('[data-product-options]').replaceChildren(...p.options.map(o => el('option', { text: o })));
      $('[data-product-facts]').replaceChildren(...p.facts.map(f => el('li', { text: f })));
      $('[data-add-to-cart]').addEventListener('submit', e => {
        e.preventDefault();
        const qty = Math.max(1, Math.min(9, parseInt($('#qty').value, 10) || 1));
        addToCart(p.id, $('#option').value, qty);
        const added = $('[data-added]');
        added.replaceChildren(qty + ' × ' + p.name + ' added. ', el('a', { href: 'cart.html', text: 'View cart' }));
      });
      seen(p.id);
    },

    cart() {
      const render = () => {
        const lines = cart();
        const rows = lines.map((l, i) => {
          const p = byId(l.id);
          const qty = el('input', { type: 'number', min: 1, max: 9, value: l.qty, 'aria-label': 'Quantity of ' + p.name, class: 'qty',
            onchange: e => { const all = cart(); all[i].qty = Math.max(1, Math.min(9, parseInt(e.target.value, 10) || 1)); store.set(CART, all); render(); } });
          return el('tr', {},
            el('td', {}, el('div', { class: 'line' }, illustration(p), el('div', {},
              el('a', { href: 'product.html?id=' + encodeURIComponent(p.id), text: p.name }),
              el('div', { class: 'muted small', text: l.option })))),
            el('td', {}, qty),
            el('td', { class: 'num', text: euro(p.price * l.qty) }),
            el('td', {}, el('button', { type: 'button', class: 'link-btn', 'aria-label': 'Remove ' + p.name, text: 'Remove',
              onclick: () => { const all = cart(); all.splice(i, 1); store.set(CART, all); render(); } })));
        });
        $('[data-cart-rows]').replaceChildren(...rows);
        $('[data-cart-table]').hidden = !lines.length;
        $('[data-cart-empty]').hidden = !!lines.length;
        $('[data-checkout-link]').classList.toggle('disabled', !lines.length);
        renderTotals();
        renderCartCount();
      };
      render();
    },

    checkout() {
      if (!cart().length) addToCart('beans', 'Whole bean', 1); // a demo checkout is never empty
      $('[data-mini-cart]').replaceChildren(...cart().map(l => {
        const p = byId(l.id);
        return el('li', {}, el('span', { text: l.qty + ' × ' + p.name }), el('span', { text: euro(p.price * l.qty) }));
      }));
      renderTotals();
      const form = $('[data-checkout-form]'), pay = $('[data-pay]'), error = $('[data-pay-error]');
      form.addEventListener('input', e => { if (e.target.value) e.target.removeAttribute('aria-invalid'); });
      form.addEventListener('submit', e => {
        e.preventDefault();
        if (pay.getAttribute('aria-busy') === 'true') return;
        const missing = $$('input[required]', form).filter(i => !i.value.trim());
        missing.forEach(i => i.setAttribute('aria-invalid', 'true'));
        if (missing.length) {
          error.hidden = false;
          error.textContent = 'Please fill in: ' + missing.map(i => $('label[for="' + i.id + '"]').textContent).join(', ') + '.';
          missing[0].focus();
          return;
        }
        // The "payment provider" answers after a moment; it declines the first
        // two attempts of the session, as a flaky real one sometimes does.
        const attempt = (parseInt(sessionStorage.getItem('kc_pay_attempts'), 10) || 0) + 1;
        sessionStorage.setItem('kc_pay_attempts', String(attempt));
        pay.setAttribute('aria-busy', 'true');
        pay.classList.add('busy');
        error.hidden = true;
        setTimeout(() => {
          pay.setAttribute('aria-busy', 'false');
          pay.classList.remove('busy');
          if (attempt <= 2) {
            error.hidden = false;
            error.textContent = 'Payment declined: your bank did not authorise this payment. No money was taken. Please check your card details and try again.';
            // A real shop learns this from its payment API; tell SessionMood too.
            if (window.SessionMood) SessionMood.track('error', { message: 'Payment declined' });
            return;
          }
          // The sale, counted once per visit however often this page runs:
          // what GET /v1/analytics/uplift compares between the groups.
          if (window.SessionMood) SessionMood.convert('purchase', totals().total);
          store.set(CART, []);
          store.set(DISCOUNT, 0);
          renderCartCount();
          form.hidden = true;
          $('.checkout-layout .summary').hidden = true;
          const done = $('[data-confirmation]');
          $('[data-order-number]').textContent = 'KC-' + String(Date.now()).slice(-6);
          done.hidden = false;
          done.focus();
        }, 450);
      });
    },
  };

  // Products this tab has looked at, so recommendations show something new.
  function seen(id) {
    const s = JSON.parse(sessionStorage.getItem('kc_seen') || '[]');
    if (!s.includes(id)) s.push(id);
    sessionStorage.setItem('kc_seen', JSON.stringify(s));
  }

  // -- SessionMood: the mood badge and the interventions -----------------------------

  const SM = window.SessionMood;
  const tag = document.querySelector('script[data-api-key]');
  const KEY = tag && tag.dataset.apiKey;
  const API = tag ? new URL(tag.src, location.href).origin : location.origin;

  // What the visitor did with an intervention: used it (helpful) or dismissed it.
  function feedback(action, helpful) {
    if (!SM || !SM.sessionId || !KEY) return Promise.resolve();
    return fetch(API + '/v1/sessions/' + encodeURIComponent(SM.sessionId) + '/feedback', {
      method: 'POST',
      keepalive: true, // survives a click that navigates away
      credentials: 'omit',
      headers: { 'X-Api-Key': KEY, 'Content-Type': 'application/json' },
      body: JSON.stringify({ action_taken: action, was_helpful: helpful }),
    }).catch(() => {});
  }

  // One intervention at a time; one answered or dismissed stays away for a while.
  const QUIET_MS = 120000;
  let current = null; // { action, node, answered }
  const quietUntil = action => +(sessionStorage.getItem('kc_quiet_' + action) || 0);
  function settle(helpful) {
    if (!current || current.answered) return;
    current.answered = true;
    sessionStorage.setItem('kc_quiet_' + current.action, String(Date.now() + QUIET_MS));
    feedback(current.action, helpful);
  }
  function close(helpful) {
    if (!current) return;
    settle(helpful);
    const c = current;
    current = null;
    if (c.onclose) c.onclose();
    c.node.remove();
  }
  function show(action, node, onclose) {
    // A stronger need replaces an intervention nobody answered yet (no feedback: we do not know).
    if (current) { const c = current; current = null; if (c.onclose) c.onclose(); c.node.remove(); }
    current = { action, node, onclose, answered: false };
  }
  const closeButton = (label, helpful) =>
    el('button', { type: 'button', class: 'icon-btn', 'aria-label': label, text: '×', onclick: () => close(helpful) });

  // show_live_chat: a support agent steps in with context.
  function liveChat(m) {
    const payment = m.signals.includes('repeated_errors') || m.signals.includes('error_encountered');
    const log = el('ol', { class: 'chat-log', 'aria-live': 'polite' });
    const say = (who, text) => {
      log.append(el('li', { class: 'msg ' + who }, el('span', { class: 'sr-only', text: who === 'agent' ? 'Maya: ' : 'You: ' }), text));
      log.scrollTop = log.scrollHeight;
    };
    const reply = text => {
      settle(true);
      say('me', text);
      const typing = el('li', { class: 'msg agent typing', 'aria-label': 'Maya is typing' }, el('span'), el('span'), el('span'));
      log.append(typing);
      setTimeout(() => {
        typing.remove();
        say('agent', payment
          ? 'Thanks! Your bank asked for an extra security check that our payment page did not show. I have switched your order to the secure 3-D Secure flow: press Pay once more and it will go through.'
          : 'Thanks for telling me. I have flagged it to the team and I am here until it works. What were you trying to do?');
      }, 900);
    };
    const input = el('input', { id: 'chat-input', name: 'message', autocomplete: 'off', placeholder: 'Type your message…' });
    const panel = el('aside', { class: 'chat', role: 'dialog', 'aria-labelledby': 'chat-title', 'data-testid': 'live-chat' },
      el('header', { class: 'chat-head' },
        el('span', { class: 'avatar', 'aria-hidden': 'true', text: 'M' }),
        el('div', {},
          el('h2', { id: 'chat-title', text: 'Maya from Kettle & Crumb' }),
          el('p', { class: 'presence', text: 'Online · usually replies in under a minute' })),
        closeButton('Close chat', false)),
      log,
      el('div', { class: 'quick' },
        ...(payment ? ['Yes, help me pay', 'I will try another card'] : ['Something is not working', 'Just browsing'])
          .map(t => el('button', { type: 'button', class: 'chip', text: t, onclick: e => { e.target.parentNode.remove(); reply(t); } }))),
      el('form', { class: 'chat-form', onsubmit: e => { e.preventDefault(); const t = input.value.trim(); if (t) { input.value = ''; reply(t); } } },
        el('label', { for: 'chat-input', class: 'sr-only', text: 'Message' }), input,
        el('button', { type: 'submit', class: 'btn btn-primary', text: 'Send' })));
    say('agent', payment
      ? 'Hi, I am Maya. I can see your payment did not go through, twice. That is frustrating, and it is usually our side, not your card. Want me to sort it out with you?'
      : 'Hi, I am Maya. Looks like something on this page is not responding the way it should. Can I help?');
    document.body.append(panel);
    show('show_live_chat', panel);
  }

  // show_tooltip: contextual help beside the field the visitor hesitates on.
  let lastField = null, lastHover = null, hoverAt = 0;
  document.addEventListener('focusin', e => { const f = e.target.closest && e.target.closest('.field[data-help]'); if (f) lastField = f; });
  document.addEventListener('input', e => { const f = e.target.closest && e.target.closest('.field[data-help]'); if (f) lastField = f; });
  document.addEventListener('mouseover', e => { const f = e.target.closest && e.target.closest('.field[data-help]'); if (f) { lastHover = f; hoverAt = Date.now(); } });
  function tooltip(m) {
    const byHover = m.signals[0] === 'hover_hesitation' && lastHover;
    const field = (byHover ? lastHover : lastField) || $('.field[data-help-default]') || $('.field[data-help]');
    if (!field) return;
    const input = $('input,select,textarea', field);
    const label = $('label', field);
    const tip = el('div', { class: 'tip', role: 'note', id: 'help-tip', 'data-testid': 'help-tooltip' },
      el('p', { class: 'tip-title', text: 'Need a hand with “' + (label ? label.textContent : 'this') + '”?' }),
      el('p', { text: field.dataset.help }),
      el('div', { class: 'tip-actions' },
        el('button', { type: 'button', class: 'btn btn-small', text: 'Thanks, that helps', onclick: () => close(true) }),
        el('button', { type: 'button', class: 'link-btn', text: 'Dismiss', onclick: () => close(false) })));
    field.append(tip);
    if (input) input.setAttribute('aria-describedby', 'help-tip');
    show('show_tooltip', tip, () => input && input.removeAttribute('aria-describedby'));
  }

  // show_recommendations: something else worth a look, for a visitor exploring.
  function recommendations() {
    const seenIds = JSON.parse(sessionStorage.getItem('kc_seen') || '[]');
    const picks = PRODUCTS.filter(p => !seenIds.includes(p.id)).concat(PRODUCTS).slice(0, 3);
    const slot = $('[data-recommendations-slot]') || $('main');
    const strip = el('section', { class: 'recs', 'aria-labelledby': 'recs-title', 'data-testid': 'recommendations' },
      el('div', { class: 'section-head' },
        el('h2', { id: 'recs-title', text: 'Picked for you' }),
        closeButton('Hide recommendations', false)),
      el('ul', { class: 'grid grid-3' }, ...picks.map(p => productCard(p, true))));
    strip.addEventListener('click', e => { if (e.target.closest('a')) settle(true); });
    slot.append(strip);
    show('show_recommendations', strip);
  }

  // show_exit_offer: the visitor drifted away; give them a reason to stay.
  function exitOffer() {
    const dialog = el('dialog', { class: 'offer', 'aria-labelledby': 'offer-title', 'data-testid': 'exit-offer' },
      el('p', { class: 'eyebrow', text: 'Still with us?' }),
      el('h2', { id: 'offer-title', text: '10% off your order, today only' }),
      el('p', { text: 'Your cart is saved. Finish your order in the next hour and we take 10% off, shipping included.' }),
      el('div', { class: 'offer-actions' },
        el('button', { type: 'button', class: 'btn btn-primary', text: 'Apply 10% off', onclick: () => {
          store.set(DISCOUNT, 1);
          renderTotals();
          close(true);
        } }),
        el('button', { type: 'button', class: 'btn', text: 'No thanks', onclick: () => close(false) })));
    dialog.addEventListener('cancel', e => { e.preventDefault(); close(false); }); // Escape
    document.body.append(dialog);
    show('show_exit_offer', dialog, () => dialog.open && dialog.close());
    // Never take the keyboard from someone typing: beside the field, not modal.
    // (Setting `open` shows a dialog without moving focus; showModal() moves it.)
    const active = document.activeElement;
    if (active && active.matches('input, textarea, select, [contenteditable]')) {
      dialog.classList.add('offer-aside');
      dialog.setAttribute('open', '');
    } else {
      dialog.showModal();
    }
  }

  const INTERVENTIONS = { show_live_chat: liveChat, show_tooltip: tooltip, show_recommendations: recommendations, show_exit_offer: exitOffer };

  // The badge: what SessionMood thinks of this visit right now.
  const badge = el('aside', { class: 'mood-badge', 'data-testid': 'mood-badge', 'aria-label': 'SessionMood: your mood right now', 'data-mood': 'neutral' },
    el('span', { class: 'dot', 'aria-hidden': 'true' }),
    el('span', { class: 'mood-text' }, el('strong', { 'data-mood-label': true, text: 'neutral' }), ' ', el('span', { class: 'muted', 'data-mood-confidence': true, text: 'waiting for data' })),
    el('span', { class: 'signals', 'data-mood-signals': true }));
  function renderBadge(m) {
    badge.dataset.mood = m.mood;
    $('[data-mood-label]', badge).textContent = m.mood;
    $('[data-mood-confidence]', badge).textContent = Math.round((m.confidence || 0) * 100) + '% sure';
    $('[data-mood-signals]', badge).replaceChildren(...(m.signals || []).slice(0, 2).map(s => el('span', { class: 'signal', text: s.replace(/_/g, ' ') })));
  }

  function onMood(m) {
    m.signals = Array.isArray(m.signals) ? m.signals : [];
    renderBadge(m);
    // A held-out visitor is the control group that proves the help pays
    // (PUT /v1/holdout): it gets none, whatever its mood. (Its
    // suggested_action is no_action already; a real shop checks this too.)
    badge.dataset.holdout = m.holdout ? 'true' : 'false';
    if (m.holdout) return;
    const action = m.suggested_action, act = INTERVENTIONS[action];
    if (!act || (current && current.action === action) || Date.now() < quietUntil(action)) return;
    if (current && current.answered) return; // the visitor is using one: leave them be
    act(m);
  }

  // -- start --------------------------------------------------------------------------

  function start() {
    renderCartCount();
    const page = pages[document.body.dataset.page];
    if (page) page();
    // In the (sticky) header: always in sight, never over the page's content.
    $('.site-header .bar').append(badge);
    if (SM) SM.onMood(onMood);
  }
  start();
})();
