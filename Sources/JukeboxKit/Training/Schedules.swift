// The Jukebox trainers' configs drive ModelKit's training loop.

import ModelKit

extension VQVAETrainConfig: TrainingSchedule {}
extension PriorTrainConfig: TrainingSchedule {}
