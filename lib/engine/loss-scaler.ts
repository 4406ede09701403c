/**
 * Dynamic loss scaling for fp16, with DeepSpeed's rules and defaults
 * (deepspeed/runtime/fp16/loss_scaler.py, DynamicLossScaler without
 * consecutive hysteresis): on an overflow the scale is halved once the hysteresis
 * is used up (else the hysteresis drops by one); after `window` steps without an
 * overflow since the last one, the scale doubles and the hysteresis is restored.
 * Unlike DeepSpeed, an overflow at the minimum scale does not stop training: the
 * step is skipped and the scale stays at the minimum.
 */
import { describeValue, invalidArgument, valueText } from '../core/errors';

/** Options of dynamic loss scaling (fp16 only). */
export interface LossScalingOptions {
  /** Initial scale, default 2^16 (DeepSpeed's initial_scale_power 16). */
  initialScale?: number;
  /** Steps without overflow before the scale doubles, default 1000. */
  window?: number;
  /** Overflows tolerated before the scale is halved, default 2. */
  hysteresis?: number;
  /** The smallest scale, default 1. */
  minScale?: number;
}

/** The scaler's state, as a checkpoint stores it. */
export interface LossScalerState {
  scale: number;
  /** Boundaries seen (DeepSpeed's cur_iter). */
  iteration: number;
  lastOverflowIteration: number;
  hysteresisLeft: number;
}

export class DynamicLossScaler {
  readonly initialScale: number;
  readonly window: number;
  readonly hysteresis: number;
  readonly minScale: number;
  private state: LossScalerState;

  constructor(options: LossScalingOptions = {}) {
    const positive = (name: string, value: unknown, fallback: number, integer: boolean): number => {
      const v = value ?? fallback;
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
        throw invalidArgument(`lossScaling.${name} ${valueText(value)} is not valid: use a positive ${integer ? 'integer' : 'number'}`);
      }
      return v;
    };
    this.initialScale = positive('initialScale', options.initialScale, 2 ** 16, false);
    this.window = positive('window', options.window, 1000, true);
    this.hysteresis = positive('hysteresis', options.hysteresis, 2, true);
    this.minScale = positive('minScale', options.minScale, 1, false);
    if (this.minScale > this.initialScale) {
      throw invalidArgument(`lossScaling.minScale ${this.minScale} is larger than initialScale ${this.initialScale}`);
    }
    this.state = { scale: this.initialScale, iteration: 0, lastOverflowIteration: -1, hysteresisLeft: this.hysteresis };
  }

  /** The scale to multiply the loss (and so the gradients) by. */
  get scale(): number {
    return this.state.scale;
  }

  /** Updates the scale after a boundary; `overflow`: some gradient was inf or NaN. */
  update(overflow: boolean): void {
    const s = this.state;
    if (overflow) {
      if (this.hysteresis === 1 || s.hysteresisLeft === 1) s.scale = Math.max(s.scale / 2, this.minScale);
      else s.hysteresisLeft -= 1;
      s.lastOverflowIteration = s.iteration;
    } else if ((s.iteration - s.lastOverflowIteration) % this.window === 0) {
      s.hysteresisLeft = this.hysteresis;
      s.scale *= 2;
    }
    s.iteration += 1;
  }

  /** A copy of the state (for checkpoints). */
  save(): LossScalerState {
    return { ...this.state };
  }

  /** Restores a saved state. */
  load(state: LossScalerState): void {
    if (!(state.scale > 0) || !Number.isInteger(state.iteration) || !Number.isInteger(state.hysteresisLeft)) {
      throw invalidArgument(`loss scaler state ${describeValue(state)} is not valid`);
    }
    this.state = { ...state };
  }
}
