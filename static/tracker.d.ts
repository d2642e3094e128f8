// Types for window.SessionMood, the global of static/tracker.js (docs/tracker.md).
// Use it from TypeScript with:  /// <reference path="./tracker.d.ts" />

declare namespace SessionMood {
  type MoodLabel = 'frustrated' | 'confused' | 'decisive' | 'browsing' | 'disengaged' | 'focused' | 'neutral';

  type SuggestedAction = 'no_action' | 'show_live_chat' | 'show_tooltip' | 'show_recommendations' | 'show_exit_offer';

  type EventType =
    | 'click'
    | 'rage_click'
    | 'scroll'
    | 'input_pause'
    | 'backtrack'
    | 'back_nav'
    | 'page_view'
    | 'error'
    | 'idle'
    | 'hover'
    | 'focus'
    | 'blur';

  /** Options of `init()`; the same names in kebab-case are `data-*` attributes of the script tag. */
  interface Options {
    /** The publishable key (`pk_…`). Required. */
    apiKey: string;
    /** Base URL of the API. Default: the origin of the script's `src`. */
    endpoint?: string;
    /** Your own opaque session id (never an e-mail or a name). Default: random, kept in sessionStorage. */
    sessionId?: string;
    /** Milliseconds between batches. Default 2000. */
    flushInterval?: number | string;
    /** No input for this long is `idle`. Default 10000. */
    idleMs?: number | string;
    /** A typing pause this long is `input_pause`. Default 2500. */
    pauseMs?: number | string;
    /** A pointer dwell this long is `hover`. Default 1000. */
    hoverMs?: number | string;
    /** Clicks in a burst that make a `rage_click`. Default 3. */
    rageClicks?: number | string;
    /** Longest gap between two clicks of a burst, ms. Default 1000. */
    rageMs?: number | string;
    /** Largest distance of a burst's clicks from its first one, px. Default 30. */
    ragePx?: number | string;
    /** How long a click waits for the page to respond before it counts as dead, ms. Default 1000. */
    deadMs?: number | string;
    /** With it, Do Not Track or Global Privacy Control means nothing is captured or sent. */
    respectDnt?: boolean | string;
    /** Log what is captured and sent to the console (console.debug). */
    debug?: boolean | string;
  }

  /** Optional fields of an event passed to `track()`; anything else is dropped. */
  interface EventFields {
    x?: number;
    y?: number;
    speed?: number;
    direction?: 'up' | 'down';
    duration_ms?: number;
    url?: string;
    message?: string;
    /** `click` only: the click looked interactive and the page did not respond. */
    dead?: boolean;
    /**
     * The element (`click`, `rage_click`, `hover`, `input_pause`, `focus`, `blur`,
     * `error`): 1-256 characters, never page text or values (docs/tracker.md).
     */
    target?: string;
  }

  /** The server's answer to a batch (POST /v1/sessions/{id}/events), plus `mood`. */
  interface MoodUpdate {
    session_id: string;
    events_stored: number;
    total_events: number;
    current_mood: MoodLabel;
    /** The same as `current_mood`. */
    mood: MoodLabel;
    confidence: number;
    signals: string[];
    /** `no_action` for a held-out session (`holdout`), whatever its mood. */
    suggested_action: SuggestedAction;
    /** In the holdout group (PUT /v1/holdout): no action is to be shown. */
    holdout: boolean;
    /** For a held-out session: the action it would have got; else null. */
    held_out_action: SuggestedAction | null;
    [field: string]: unknown;
  }

  interface Api {
    /** Start (once; later calls are ignored until `stop()`). Returns the API. */
    init(options: Options): Api;
    /** Add an event yourself, e.g. `track('error', {message: 'Payment declined'})`. Never throws. */
    track(type: EventType, fields?: EventFields): void;
    /** Send now; resolves (never rejects) once the server answered or the try failed. */
    flush(): Promise<void>;
    /**
     * Count a conversion of this session, once per `name` (default `conversion`)
     * however often it is called; `value` optional (0 to 1e9). Sent after what is
     * queued, as a beacon; resolves to whether the browser took it.
     */
    convert(name?: string, value?: number): Promise<boolean>;
    /** Called after every answer from the server; returns a function that unsubscribes. */
    onMood(callback: (mood: MoodUpdate) => void): () => void;
    /** Stop capturing and sending; unsent events are discarded. */
    stop(): void;
    /** The session id in use (`null` until started). */
    readonly sessionId: string | null;
  }
}

interface Window {
  SessionMood: SessionMood.Api;
}

declare var SessionMood: SessionMood.Api;
