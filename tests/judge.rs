//! The digit judge on the shipped images: it recognises held-out digits,
//! passes real images as real and flags noise and copies.

use proxflow::neural::judge::Judge;
use proxflow::neural::target::Target;
use rand::{Rng, SeedableRng};

#[test]
fn the_judge_recognises_held_out_digits_and_tells_noise_from_them() {
    let target = Target::load("digits", None, 2000, 0).unwrap();
    let judge = Judge::train(target.training().unwrap(), target.test(), 0).unwrap();
    assert!(
        judge.heldout_accuracy >= 0.9,
        "held-out accuracy {}",
        judge.heldout_accuracy
    );
    // held-out images judged as if generated: recognised, every class, at
    // the Fréchet floor, as far from the training set as themselves
    let real = judge.assess(&target.test().values);
    assert!(real.confident_fraction >= 0.8, "{}", real.caption());
    assert_eq!(real.classes_present, 10, "{}", real.caption());
    assert!(real.frechet <= real.frechet_floor, "{}", real.caption());
    assert_eq!(
        real.nearest_train_distance,
        real.heldout_nearest_train_distance
    );
    // uniform noise in [0, 0.5] (the flow's source): far from digits
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let noise: Vec<f64> = (0..target.test().values.len())
        .map(|_| 0.5 * rng.random::<f64>())
        .collect();
    let judged = judge.assess(&noise);
    assert!(
        judged.frechet > 10.0 * judged.frechet_floor,
        "{}",
        judged.caption()
    );
    assert!(judged.confident_fraction < 0.5, "{}", judged.caption());
    // copies of training images: memorisation shows as a zero distance
    let copies = target.training().unwrap().values[..64 * 100].to_vec();
    assert_eq!(judge.assess(&copies).nearest_train_distance, 0.0);
    // unlabelled data are refused with a clear error
    let mut unlabelled = target.test().clone();
    unlabelled.labels = None;
    let e = Judge::train(&unlabelled, target.test(), 0)
        .err()
        .expect("no labels")
        .to_string();
    assert!(e.contains("labelled"), "{e}");
}
