// The product card, shared by the watch page (live pins) and the shorts feed (catalog products).
// Builds DOM nodes with textContent only: every field comes from the network.

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// Prices are decimal strings (docs/overlay-protocol.md); Intl only lays them out.
export function formatPrice(price, currency) {
  const n = Number(price);
  if (!Number.isFinite(n)) return '';
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency || 'EUR' }).format(n);
  } catch (_) {
    return `${price} ${currency || ''}`.trim();
  }
}

// Only http(s) images: a javascript: or data: URL from a message must not reach an <img>.
export function safeImage(url) {
  try {
    const u = new URL(String(url), location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '';
  } catch (_) {
    return '';
  }
}

// Returns { root, update(product), setSale(sale), setCartState(kind, text) }; `onAdd(sku)` runs
// when the button is pressed.
export function productCard(onAdd) {
  const root = el('section', 'sw-card');
  root.setAttribute('aria-live', 'polite');
  const img = el('img', 'sw-card-img');
  img.alt = '';
  img.onerror = () => {
    img.hidden = true; // a broken image icon says less than no image
  };
  const body = el('div', 'sw-card-body');
  const title = el('h2', 'sw-card-title');
  const price = el('div', 'sw-card-price');
  const was = el('s', 'sw-card-was');
  const stock = el('div', 'sw-card-stock');
  const sale = el('div', 'sw-card-sale');
  const button = el('button', 'sw-card-add', 'Add to cart');
  const status = el('div', 'sw-card-status');
  status.setAttribute('role', 'status');
  price.append(was);
  body.append(title, price, stock, sale, button, status);
  root.append(img, body);

  let product = null;
  let saleEnds = 0;
  let timer = 0;

  function renderPrice(p, c, salePrice) {
    price.textContent = formatPrice(salePrice ?? p, c);
    if (salePrice !== undefined && salePrice !== null) {
      was.textContent = formatPrice(p, c);
      price.append(' ', was);
    }
  }

  function tick() {
    const left = Math.max(0, Math.round((saleEnds - Date.now()) / 1000));
    if (left <= 0) {
      sale.textContent = '';
      root.classList.remove('sw-on-sale');
      clearInterval(timer);
      timer = 0;
      if (product) renderPrice(product.price, product.currency);
      return;
    }
    const m = Math.floor(left / 60), s = left % 60;
    sale.textContent = `Flash sale ends in ${m}:${String(s).padStart(2, '0')}`;
  }

  button.addEventListener('click', () => {
    if (product) onAdd(product.sku);
  });

  return {
    root,
    get sku() {
      return product ? product.sku : null;
    },
    update(p) {
      product = { ...(product && product.sku === p.sku ? product : {}), ...p };
      const src = safeImage(product.image);
      if (src) img.src = src;
      else img.removeAttribute('src');
      img.hidden = !src;
      title.textContent = product.title || product.sku || '';
      renderPrice(product.price, product.currency);
      const n = Number(product.stock);
      stock.textContent = Number.isFinite(n) ? (n > 0 ? `${n} left` : 'Sold out') : '';
      button.disabled = Number.isFinite(n) && n <= 0;
      root.dataset.sku = product.sku || '';
    },
    setSale(s) {
      const ends = Date.parse(s.ends_at);
      if (!product || s.sku !== product.sku || !Number.isFinite(ends)) return;
      saleEnds = ends;
      root.classList.add('sw-on-sale');
      renderPrice(product.price, s.currency || product.currency, s.price);
      if (!timer) timer = setInterval(tick, 250);
      tick();
    },
    setCartState(kind, text) {
      status.textContent = text;
      status.className = `sw-card-status sw-${kind}`;
    },
  };
}
