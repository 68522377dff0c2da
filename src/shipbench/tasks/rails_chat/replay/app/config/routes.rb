Rails.application.routes.draw do
  root "messages#index"
  resources :messages, only: %i[index create]
  delete "conversation", to: "messages#reset", as: :reset_conversation
  get "up" => "rails/health#show", as: :rails_health_check
end
